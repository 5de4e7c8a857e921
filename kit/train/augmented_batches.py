"""Training batches whose images go through the recipe's albumentations pipeline first.

Each batch is gathered from the uint8 array as ArrayBatches does, every image augmented at its
cached size (uint8 H x W x C), then normalised and resized as one tensor. Without augmentation
kit keeps using plain ArrayBatches: this class is only built when a recipe asks for transforms.

Reproducible whatever the number of workers: each pass draws one seed from the batches' generator
(saved in the epoch checkpoint), and batch b of the pass seeds the pipeline with (that seed, b).
With workers = 0 the batches are augmented in this process (on a small CPU the model needs every
core); with workers > 0 a torch DataLoader augments whole batches in worker processes, which
inherit the (memory-mapped) images when they fork.
"""

from __future__ import annotations

import numpy as np
import torch

from ..augment import augment_images
from .batches import ArrayBatches, Normalizer


class AugmentedBatches(ArrayBatches):
    def __init__(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray, batch_size: int,
                 normalizer: Normalizer, pipeline, shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                 workers: int = 0):
        super().__init__(images, labels, indices, batch_size, normalizer, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.pipeline = pipeline
        self.workers = workers

    def __iter__(self):
        plan = _BatchPlan(self.images, self.labels, self.batch_rows(), int(self.rng.integers(2**63)),
                          self.pipeline, self.normalizer)
        if self.workers == 0:
            yield from (plan[b] for b in range(len(plan)))
            return
        # batch_size=None: each item of the plan is already a whole batch; workers restart every pass
        # (forked with this pass's plan), which costs little next to an epoch
        yield from torch.utils.data.DataLoader(plan, batch_size=None, shuffle=False, num_workers=self.workers)


class _BatchPlan(torch.utils.data.Dataset):
    """One pass: which rows make batch b, and the seed its augmentations replay from."""

    def __init__(self, images, labels, rows: list[np.ndarray], seed: int, pipeline, normalizer: Normalizer):
        self.images, self.labels, self.rows = images, labels, rows
        self.seed, self.pipeline, self.normalizer = seed, pipeline, normalizer

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.rows[b]
        seed = int(np.random.SeedSequence([self.seed, b]).generate_state(1)[0])
        images = augment_images(self.pipeline, self.images[rows], seed)
        return self.normalizer(images), torch.from_numpy(self.labels[rows])
