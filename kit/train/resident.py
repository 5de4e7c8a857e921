"""Batches from a dataset held whole on the device, as the fastest hand-written loops do.

Small images (CIFAR's 50,000 x 32 x 32 x 3 are 150 MB as uint8) fit in memory many times over,
so there is no reason to gather, convert and normalise every batch from the uint8 array again:

  * on the CPU the rows are normalised once into a float tensor (the loop then only slices it:
    per-batch conversion costs ~8% of a small CNN's inference time on a 2-core machine);
  * on a GPU the uint8 rows are copied over once (4x less memory than floats, one transfer in
    all) and each batch is converted and normalised there, where it costs nothing.

Either way a batch is an index into a resident tensor; resizing to the model's input size (when
it differs from the images') happens per batch, on the device. Batch-level augmentation
(flip, translate, cutout) runs on the device too (kit/train/batch_augment.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .batches import Normalizer

# keep a float copy of the rows resident only up to this size; beyond it, batches are normalised on the fly
RESIDENT_FLOAT_BUDGET = 2 * 1024**3


def fits_resident(images: np.ndarray, rows: int, device: torch.device) -> bool:
    """Whether `rows` images of this shape can live on `device` (float32 on the CPU, uint8 on a GPU)."""
    per_image = int(np.prod(images.shape[1:]))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return rows * per_image < free // 4  # leave three quarters of the GPU to the model
    return rows * per_image * 4 <= RESIDENT_FLOAT_BUDGET


class ResidentBatches:
    """Iterate (inputs, labels) over rows `indices` of `images`, held on `device`; same order and
    RNG contract as ArrayBatches, so the two are interchangeable (and resume identically)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                 normalizer: Normalizer, device: torch.device, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, augment=None):
        self.indices = np.asarray(indices)
        self.labels = labels
        self.batch_size = batch_size
        self.normalizer = normalizer
        self.device = device
        self.shuffle = shuffle
        self.drop_last = drop_last and len(self.indices) > batch_size
        self.rng = np.random.default_rng(seed)
        self.augment = augment
        rows = np.asarray(images[np.sort(self.indices)])  # one pass over the (memory-mapped) cache
        self.position = {int(r): i for i, r in enumerate(np.sort(self.indices))}
        uint8 = torch.from_numpy(rows)
        if device.type == "cuda":
            self.data = uint8.pin_memory().to(device, non_blocking=True)  # normalised per batch, on the GPU
            self.mean, self.std = normalizer.mean.to(device), normalizer.std.to(device)
        else:
            self.data = normalizer.normalize(uint8)  # float NCHW, normalised once
        self.label_data = None if labels is None else torch.from_numpy(labels[np.sort(self.indices)]).to(device)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        order = self.rng.permutation(self.indices) if self.shuffle else self.indices
        where = torch.as_tensor(np.fromiter((self.position[int(r)] for r in order), dtype=np.int64, count=len(order)),
                                device=self.device)
        for b in range(len(self)):
            take = where[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.data.index_select(0, take)
            if self.device.type == "cuda":
                x = self.normalizer.normalize(x, self.mean, self.std)
            if self.augment is not None:
                x = self.augment(x)
            x = self.normalizer.resize(x)
            y = None if self.label_data is None else self.label_data.index_select(0, take)
            yield x, y

    def state_dict(self) -> dict:
        state = {"rng": self.rng.bit_generator.state}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])


def batches_for(images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                normalizer: Normalizer, device: torch.device, **options):
    """ResidentBatches when the rows fit on the device (the fast path), else ArrayBatches (per-batch gathering)."""
    from .batches import ArrayBatches

    if fits_resident(images, len(indices), device):
        return ResidentBatches(images, labels, indices, batch_size, normalizer, device, **options)
    return ArrayBatches(images, labels, indices, batch_size, normalizer, device=device, **options)
