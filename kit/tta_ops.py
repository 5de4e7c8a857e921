"""The tensor side of test-time augmentation: each view of kit/tta.py as an operation on a batch.

Kept apart from kit/tta.py so that what only names or describes views (recipes, `kit blend`'s
messages) never imports torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """The image moved by (dx, dy) pixels, the uncovered edge filled by repeating the border."""
    padded = F.pad(x, (max(dx, 0), max(-dx, 0), max(dy, 0), max(-dy, 0)), mode="replicate")
    h, w = x.shape[-2:]
    top, left = max(-dy, 0), max(-dx, 0)
    return padded[..., top:top + h, left:left + w]


# view name -> f(batch NCHW, shift in pixels) -> batch of the same shape; one per name in kit.tta.VIEWS
OPS = {
    "identity": lambda x, s: x,
    "hflip": lambda x, s: x.flip(-1),
    "vflip": lambda x, s: x.flip(-2),
    "hvflip": lambda x, s: x.flip(-2, -1),  # both flips: a 180 degree rotation
    "shift_left": lambda x, s: _shift(x, -s, 0),
    "shift_right": lambda x, s: _shift(x, s, 0),
    "shift_up": lambda x, s: _shift(x, 0, -s),
    "shift_down": lambda x, s: _shift(x, 0, s),
    "shift_up_left": lambda x, s: _shift(x, -s, -s),
    "shift_down_right": lambda x, s: _shift(x, s, s),
    "hflip_shift_up_left": lambda x, s: _shift(x.flip(-1), -s, -s),
    "hflip_shift_down_right": lambda x, s: _shift(x.flip(-1), s, s),
}


def apply_views(x: torch.Tensor, views: tuple[str, ...], shift: int) -> torch.Tensor:
    """(V*B, C, H, W): every view of the batch, view after view."""
    return torch.cat([OPS[v](x, shift) for v in views])
