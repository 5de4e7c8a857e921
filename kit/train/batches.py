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
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.size = size

    @classmethod
    def from_images(cls, images: np.ndarray, size: int | None) -> "Normalizer":
        """Per-channel statistics of the training images (a strided sample keeps it fast on big sets)."""
        sample = images[:: max(1, len(images) // 10_000)].reshape(-1, images.shape[-1]).astype(np.float64) / 255.0
        return cls(sample.mean(0), np.maximum(sample.std(0), 1e-3), size)

    def to(self, device: torch.device) -> "Normalizer":
        """This normaliser with its statistics on `device`, moved once rather than with every batch."""
        if self.mean.device == torch.device(device):
            return self
        return Normalizer(self.mean.to(device), self.std.to(device), self.size)

    def __call__(self, batch: np.ndarray | torch.Tensor) -> torch.Tensor:
        return self.resize(self.normalize(torch.as_tensor(batch)))

    def normalize(self, uint8: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC -> float NCHW (contiguous), (x / 255 - mean) / std, as one scale and one shift."""
        scale, shift = (1.0 / (255.0 * self.std)).view(-1), (-self.mean / self.std).view(-1)
        # the affine runs in NHWC, where the channel is the last (broadcast) axis, before the one copy to NCHW
        x = uint8.float().mul_(scale).add_(shift)
        return x.permute(0, 3, 1, 2).contiguous()

    def fill_value(self, raw: float) -> torch.Tensor:
        """A raw pixel value (0..255), per channel, in the normalised space."""
        return ((raw / 255.0 - self.mean) / self.std).view(-1)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """To the model's input size: upsample small images, never zero-pad (an ImageNet net learns nothing from padding)."""
        if self.size is None or x.shape[-2:] == (self.size, self.size):
            return x
        down = x.shape[-1] > self.size
        return F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=down)


class ArrayBatches:
    """Iterate (inputs, labels) over rows `indices` of `images`, reshuffled each pass when `shuffle`."""

    def __init__(self, images: np.ndarray, labels: np.ndarray | None, indices: np.ndarray, batch_size: int,
                 normalizer: Normalizer, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
                 device: torch.device | None = None, augment=None):
        self.images, self.labels = images, labels
        self.augment = augment  # a BatchAugment (kit/train/batch_augment.py), applied to the normalised batch
        # on a GPU the uint8 batch crosses over (pinned, asynchronously: 4x fewer bytes than floats) and is
        # normalised there; on the CPU it is normalised where it is
        self.device = torch.device("cpu") if device is None else torch.device(device)
        self.indices = np.asarray(indices)
        self.batch_size = batch_size
        self.normalizer = normalizer.to(self.device)
        self.shuffle = shuffle
        # a small last batch makes batch-norm statistics noisy; drop it while training if the set is large enough
        self.drop_last = drop_last and len(self.indices) > batch_size
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.augment is not None:
            self.augment.start_pass()
        for rows in self.batch_rows():
            batch = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
            y = None if self.labels is None else torch.from_numpy(self.labels[rows])
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
                y = None if y is None else y.pin_memory().to(self.device, non_blocking=True)
            x = self.normalizer.normalize(batch)
            if self.augment is not None:
                x = self.augment(x, rows)
            yield self.normalizer.resize(x), y

    def first_images(self, n: int) -> torch.Tensor:
        """The first `n` of `indices`' images, normalised and resized, unaugmented, on the device."""
        rows = self.indices[:n]
        return self.normalizer(torch.from_numpy(np.ascontiguousarray(self.images[rows])).to(self.device))

    def batch_rows(self) -> list[np.ndarray]:
        """This pass's rows, batch by batch (a new shuffle each call when `shuffle`)."""
        order = self.rng.permutation(self.indices) if self.shuffle else self.indices
        batches = [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(len(self))]
        # a memory map reads fastest front to back; the order within a batch does not matter
        return [np.sort(rows) for rows in batches] if isinstance(self.images, np.memmap) else batches

    # the shuffling (and augmenting) generators are part of a resumable training state
    def state_dict(self) -> dict:
        state = {"rng": self.rng.bit_generator.state}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        if self.augment is not None and "augment" in state:
            self.augment.load_state_dict(state["augment"])
