"""Batches straight from the decoded uint8 array.

A batch is gathered by index from the N x H x W x C uint8 array, turned into a float NCHW tensor,
normalised and resized in one vectorised step: no per-image Python, no decoding, no worker
processes. This is what keeps kit's loop as fast as a hand-written one on small images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Normalizer:
    """uint8 NHWC batch -> float NCHW, scaled to [0, 1], standardised per channel, resized."""

    def __init__(self, mean, std, size: int | None):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.size = size

    @classmethod
    def from_images(cls, images: np.ndarray, size: int | None) -> "Normalizer":
        """Per-channel statistics of the training images (a strided sample keeps it fast on big sets)."""
        sample = images[:: max(1, len(images) // 10_000)].reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        return cls(sample.mean(0), np.maximum(sample.std(0), 1e-3), size)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(batch).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        if self.size is not None and x.shape[-2:] != (self.size, self.size):
            # upsample small images to the model's size: never zero-pad (an ImageNet net learns nothing from padding)
            down = x.shape[-1] > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=down)
        return x.contiguous()


class ArrayBatches:
    """Iterate (inputs, labels) over rows `indices` of `images`, reshuffled each pass when `shuffle`."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                 normalizer: Normalizer, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
        self.images, self.labels = images, labels
        self.indices = np.asarray(indices)
        self.batch_size = batch_size
        self.normalizer = normalizer
        self.shuffle = shuffle
        # a small last batch makes batch-norm statistics noisy; drop it while training if the set is large enough
        self.drop_last = drop_last and len(self.indices) > batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        for rows in self.batch_rows():
            x = self.normalizer(self.images[rows])
            y = None if self.labels is None else torch.from_numpy(self.labels[rows])
            yield x, y

    def batch_rows(self) -> list[np.ndarray]:
        """This pass's rows, batch by batch (a new shuffle each call when `shuffle`)."""
        order = self.rng.permutation(self.indices) if self.shuffle else self.indices
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        # a memory map reads fastest front to back; the order within a batch does not matter
        return [np.sort(rows) for rows in batches] if isinstance(self.images, np.memmap) else batches

    # the shuffling generator is part of a resumable training state
    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
