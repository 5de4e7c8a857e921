"""Test-time augmentation: views of a normalised batch, run through the model together and averaged.

A recipe's `tta` names the views (or a preset of them). Every prediction kit makes goes through
the same function (kit/train/loop.py's predict_proba): the held-out fold, the test set and
`kit predict`, so the out-of-fold probabilities a blender learns from are made exactly as the
test probabilities it is applied to.

Views are tensor operations on the batch the model sees (after normalising and resizing), so all
views of a batch are concatenated along the batch dimension and go through the model in one
forward pass; their softmax probabilities are averaged with equal weights. This module only names,
resolves and describes views (no torch, so that `kit blend` need not import it); kit/tta_ops.py
holds the tensor operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import RecipeError, did_you_mean

if TYPE_CHECKING:
    import torch

# the views a recipe may name; their tensor operations are in kit/tta_ops.py, imported only to predict
VIEWS = ("identity", "hflip", "vflip", "hvflip", "shift_left", "shift_right", "shift_up", "shift_down",
         # airbench's translations: diagonal, and mirrored too
         "shift_up_left", "shift_down_right", "hflip_shift_up_left", "hflip_shift_down_right")

SHIFTS = ["shift_left", "shift_right", "shift_up", "shift_down"]
DIAGONAL_SHIFTS = ["shift_up_left", "shift_down_right", "hflip_shift_up_left", "hflip_shift_down_right"]
PRESETS = {
    "none": ["identity"],
    "flip": ["identity", "hflip"],
    "shift": ["identity", *SHIFTS],
    "flip_shift": ["identity", "hflip", *SHIFTS],
    # airbench94's tta_level 2: mirror, and mirror of the image moved diagonally either way (equal weights here)
    "airbench": ["identity", "hflip", *DIAGONAL_SHIFTS],
}


def resolve_views(views: str | list[str], where: str = "tta.views") -> list[str]:
    """A preset name or a list of view names (presets may appear in it) -> the view names, in order."""
    names = []
    for name in [views] if isinstance(views, str) else views:
        if name in PRESETS:
            names += [v for v in PRESETS[name] if v not in names]
        elif name in VIEWS:
            if name in names:
                raise RecipeError(f"{where}: '{name}' is listed twice; each view counts once in the average")
            names.append(name)
        else:
            raise RecipeError(f"{where}: '{name}' is not a view ({', '.join(VIEWS)}) nor a preset "
                              f"({', '.join(PRESETS)}){did_you_mean(name, [*VIEWS, *PRESETS])}")
    if not names:
        raise RecipeError(f"{where}: no view given; use none for plain predictions")
    return names


@dataclass(frozen=True)
class TTA:
    """The views to average, and how far the shift views move the image (a fraction of its side, >= 1 px)."""

    views: tuple[str, ...] = ("identity",)
    shift: float = 0.0625

    @classmethod
    def from_config(cls, cfg) -> "TTA":
        """From a recipe's resolved `tta` section."""
        return cls(tuple(cfg.views), cfg.shift)

    @classmethod
    def from_record(cls, record: str | dict) -> "TTA":
        """The TTA a model recorded in its model.json ("none" for plain predictions)."""
        if record == "none" or record is None:
            return cls()
        return cls(tuple(record["views"]), record.get("shift", cls.shift))

    @property
    def record(self) -> str | dict:
        """What the store records: "none" for plain predictions, else the views (and the shift, if one is used)."""
        if self.views == ("identity",):
            return "none"
        record = {"views": list(self.views)}
        if any(v in SHIFTS or v in DIAGONAL_SHIFTS for v in self.views):
            record["shift"] = self.shift
        return record

    def shift_pixels(self, side: int) -> int:
        return max(1, round(side * self.shift))

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        """(V*B, C, H, W): every view of the batch, view after view."""
        if self.views == ("identity",):
            return x
        from .tta_ops import apply_views

        return apply_views(x, self.views, self.shift_pixels(min(x.shape[-2:])))

    def merge(self, probs: torch.Tensor) -> torch.Tensor:
        """(V*B, K) probabilities of expand()'s batch -> (B, K), the mean over the views."""
        if len(self.views) == 1:
            return probs
        return probs.view(len(self.views), -1, probs.shape[-1]).mean(0)


NO_TTA = TTA()


def describe(record: str | dict) -> str:
    """A TTA record in a few words, for messages: 'none', 'identity+hflip', 'identity+shift_left (shift 0.0625)'."""
    if not isinstance(record, dict):
        return str(record)
    shift = f" (shift {record['shift']})" if "shift" in record else ""
    return "+".join(record["views"]) + shift
