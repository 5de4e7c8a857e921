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

from .batches import ArrayBatches, Normalizer

# keep a float copy of the rows resident only up to this size; beyond it, batches are normalised on the fly
RESIDENT_FLOAT_BUDGET = 2 * 1024**3


def fits_resident(images: np.ndarray, rows: int, device: torch.device) -> bool:
    """Whether `rows` images of this shape can live on `device` (float32 on the CPU, uint8 on a GPU)."""
    per_image = int(np.prod(images.shape[1:]))
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return rows * per_image < free // 4  # leave three quarters of the GPU to the model
    return rows * per_image * 4 <= RESIDENT_FLOAT_BUDGET


class ResidentBatches(ArrayBatches):
    """Iterate (inputs, labels) over rows `indices` of `images`, held on `device`; the order, the
    augmentation and the resumable state are ArrayBatches', so the two are interchangeable."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                 normalizer: Normalizer, device: torch.device, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, augment=None):
        super().__init__(images, labels, indices, batch_size, normalizer, shuffle=shuffle, seed=seed,
                         drop_last=drop_last, device=device, augment=augment)
        held = np.sort(self.indices)
        self.position = np.zeros(int(held.max()) + 1 if len(held) else 0, dtype=np.int64)
        self.position[held] = np.arange(len(held))  # image row -> its place in the resident tensor
        uint8 = torch.from_numpy(np.asarray(images[held]))  # one pass over the (memory-mapped) cache
        if self.device.type == "cuda":
            self.data = uint8.pin_memory().to(self.device, non_blocking=True)  # normalised per batch, on the GPU
        else:
            self.data = self.normalizer.normalize(uint8)  # float NCHW, normalised once
        self.label_data = None if labels is None else torch.from_numpy(labels[held]).to(self.device)
        # held-out and test rows come in order: their batches are slices of the resident tensor, not copies
        # (never augmented, so nothing writes into them)
        self.in_order = not shuffle and augment is None and np.array_equal(self.indices, held)

    def __iter__(self):
        if self.augment is not None:
            self.augment.start_pass()
        for b, rows in enumerate(self.batch_rows()):
            start = b * self.batch_size
            take = (slice(start, start + len(rows)) if self.in_order
                    else torch.from_numpy(self.position[rows]).to(self.device))
            x = self.data[take]  # a view for a slice, a gathered copy for an index tensor
            if self.device.type == "cuda":
                x = self.normalizer.normalize(x)
            if self.augment is not None:
                x = self.augment(x, rows)
            y = None if self.label_data is None else self.label_data[take]
            yield self.normalizer.resize(x), y


def batches_for(images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                normalizer: Normalizer, device: torch.device, **options):
    """ResidentBatches when the rows fit on the device (the fast path), else ArrayBatches (per-batch gathering)."""
    if fits_resident(images, len(indices), device):
        return ResidentBatches(images, labels, indices, batch_size, normalizer, device, **options)
    return ArrayBatches(images, labels, indices, batch_size, normalizer, device=device, **options)
