"""Weights files: `model.pretrained: path/to/weights.pth` (or .safetensors) in a recipe.

A file is read with timm's loader (plain state dicts, timm/torchvision checkpoints wrapped in
'state_dict' or 'model', DDP 'module.' prefixes, safetensors). Everything but the classifier must
fit the architecture exactly; otherwise the error names the keys that do not, since a file of
another architecture that loads half-way trains silently from a broken start.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from ..errors import RecipeError, first_line

SHOWN_KEYS = 3  # keys named per kind of mismatch in an error line


def check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"model.pretrained: no such weights file '{path}' (a .pth, .pt or .safetensors file; "
                          f"paths are relative to the folder kit runs in)")
    return path


def read_state_dict(path: Path) -> dict:
    from timm.models import load_state_dict

    check_file(path)
    try:
        state = load_state_dict(str(path), weights_only=True)
    except Exception as exc:  # torch.load and safetensors raise many kinds; any of them means an unreadable file
        raise RecipeError(f"model.pretrained: {path}: not a readable weights file ({type(exc).__name__}: {first_line(exc)})") from None
    if not isinstance(state, dict) or not state:
        raise RecipeError(f"model.pretrained: {path}: holds no state dict of tensors")
    return state


def classifier_keys(model: nn.Module) -> set[str]:
    """State-dict keys of the classifier that a new competition replaces (timm's get_classifier contract)."""
    classifier = model.get_classifier()
    names = {id(m): n for n, m in model.named_modules()}
    prefix = names[id(classifier)]
    return {f"{prefix}.{k}" for k in classifier.state_dict()}


def load_backbone(model: nn.Module, path: Path, arch: str) -> None:
    """Load every weight but the classifier's from `path` into `model` (a scratch net), exactly."""
    state = read_state_dict(path)
    skip = classifier_keys(model)
    own = {k: v for k, v in model.state_dict().items() if k not in skip}
    given = {k: v for k, v in state.items() if k not in skip}
    missing = sorted(own.keys() - given.keys())
    unexpected = sorted(given.keys() - own.keys())
    shapes = [(k, list(given[k].shape), list(own[k].shape)) for k in own.keys() & given.keys()
              if given[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise RecipeError(mismatch_message(path, arch, missing, unexpected, sorted(shapes)))
    model.load_state_dict(given, strict=False)


def mismatch_message(path: Path, arch: str, missing: list[str], unexpected: list[str],
                     shapes: list[tuple[str, list, list]]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} keys missing from the file ({_some(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} keys the model does not have ({_some(unexpected)})")
    if shapes:
        shown = ", ".join(f"{k} file {f} vs model {m}" for k, f, m in shapes[:SHOWN_KEYS])
        parts.append(f"{len(shapes)} shapes differ ({shown}{', ...' if len(shapes) > SHOWN_KEYS else ''})")
    return (f"model.pretrained: {path} does not fit {arch}: " + "; ".join(parts)
            + f"; are these {arch} weights with the same model.params?")


# torch's load_state_dict(strict=True) error, in the words torch has used for years
_MISSING = re.compile(r"Missing key\(s\) in state_dict: (.*)")
_UNEXPECTED = re.compile(r"Unexpected key\(s\) in state_dict: (.*)")
_SHAPE = re.compile(r"size mismatch for ([^:]+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) from "
                    r"checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)")


def parse_load_error(text: str) -> tuple[list[str], list[str], list[tuple[str, list, list]]]:
    """(missing, unexpected, shape mismatches) from the message of a failed strict load_state_dict."""
    missing = [k for m in _MISSING.finditer(text) for k in re.findall(r'"([^"]+)"', m.group(1))]
    unexpected = [k for m in _UNEXPECTED.finditer(text) for k in re.findall(r'"([^"]+)"', m.group(1))]
    shapes = [(k, _dims(f), _dims(m)) for k, f, m in _SHAPE.findall(text)]
    return missing, unexpected, shapes


def _dims(text: str) -> list[int]:
    return [int(d) for d in text.split(",") if d.strip()]


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN_KEYS]) + (", ..." if len(keys) > SHOWN_KEYS else "")
