"""Mixup and CutMix: batch-level augmentation that blends pairs of images and their labels.

Each training batch gets mixup with probability mixup.p, else CutMix with probability cutmix.p,
else nothing. Image i is paired with image B-1-i (the batch is already shuffled, as timm's Mixup
pairs them). Mixup takes lam * x_i + (1 - lam) * x_j; CutMix pastes a box of x_j into x_i, its
area 1 - lam of the image. lam is drawn from Beta(alpha, alpha); the targets become the same
mixture of the two one-hot labels (cross entropy with probabilities; label smoothing composes).

The draws come from the mixer's own generator, saved in the epoch checkpoint, so a resumed run
mixes exactly as an uninterrupted one.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class BatchMixer:
    def __init__(self, num_classes: int, mixup=None, cutmix=None, seed: int = 0):
        """mixup, cutmix: objects with .p and .alpha (the recipe's augment.mixup / augment.cutmix), or None."""
        self.num_classes = num_classes
        self.mixup, self.cutmix = mixup, cutmix
        self.rng = np.random.default_rng([seed, 0x6D6978])  # its own stream, apart from the shuffling's

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets): targets are the labels themselves (int) when the batch is left alone,
        else (B, K) probabilities. Packed per-row targets (float rows, kit/train/targets.py) are mixed
        as rows, and stay packed."""
        u = self.rng.random()
        mix_p = self.mixup.p if self.mixup else 0.0
        cut_p = self.cutmix.p if self.cutmix else 0.0
        if u < mix_p:
            lam = float(self.rng.beta(self.mixup.alpha, self.mixup.alpha))
            x = x * lam + x.flip(0) * (1 - lam)
        elif u < mix_p + cut_p:
            lam = float(self.rng.beta(self.cutmix.alpha, self.cutmix.alpha))
            top, bottom, left, right = self._box(x.shape[-2], x.shape[-1], lam)
            x = x.clone()
            x[..., top:bottom, left:right] = x.flip(0)[..., top:bottom, left:right]
            lam = 1 - (bottom - top) * (right - left) / (x.shape[-2] * x.shape[-1])  # the box as it fell, clipped
        else:
            return x, y
        rows = y if y.is_floating_point() else F.one_hot(y, self.num_classes).float()
        return x, rows * lam + rows.flip(0) * (1 - lam)

    def _box(self, h: int, w: int, lam: float) -> tuple[int, int, int, int]:
        """A box of about (1 - lam) of the image, centred anywhere, clipped to the image (timm's rand_bbox)."""
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = int(self.rng.integers(h)), int(self.rng.integers(w))
        return (int(np.clip(cy - cut_h // 2, 0, h)), int(np.clip(cy + cut_h // 2, 0, h)),
                int(np.clip(cx - cut_w // 2, 0, w)), int(np.clip(cx + cut_w // 2, 0, w)))

    # the generator is part of a resumable training state
    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
