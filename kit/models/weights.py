"""Weights files: `model.pretrained: path/to/weights.pth` (or .safetensors, or package:NAME) in a recipe.

A file is read with timm's loader (plain state dicts, timm/torchvision checkpoints wrapped in
'state_dict' or 'model', DDP 'module.' prefixes, safetensors). Everything but the classifier must
fit the architecture exactly; otherwise the error names the keys that do not, since a file of
another architecture that loads half-way trains silently from a broken start.

A checkpoint whose keys are not timm's (another port of the same network: `_conv_stem`,
`_blocks.0._depthwise_conv` for timm's `conv_stem`, `blocks.0.0.conv_dw`) is mapped onto the timm
model by map_foreign_state_dict: by renaming rules where one makes the keys match (wrapper
prefixes), else tensor by tensor in order, each pair checked for its shape and its key's last
part (weight, bias, running_mean, ...). The first pair that differs refuses the whole file.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from ..errors import RecipeError, first_line

SHOWN_KEYS = 3  # keys named per kind of mismatch in an error line


def check_file(path: str | Path) -> Path:
    """The weights file `path` names; 'package:NAME' is the one inside an installed package (weight_packages.py)."""
    from . import weight_packages

    if weight_packages.is_package(path):
        return weight_packages.weights_file(str(path))
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"model.pretrained: no such weights file '{path}' (a .pth, .pt or .safetensors file; "
                          f"paths are relative to the folder kit runs in)")
    return path


def read_state_dict(path: Path) -> dict:
    from timm.models import load_state_dict

    path = check_file(path)
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


# prefixes that wrappers put before every key (Lightning's model., a detector's backbone., ...): renaming
# rules tried before the order-and-shape mapping, as each leaves the tensors' names meaningful
WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "net.", "base_model.")


def map_foreign_state_dict(state: dict, model: nn.Module, path: Path, arch: str,
                           first_conv: str | None = None) -> dict:
    """`state` (a checkpoint of the same network under other names) keyed as `model`'s state dict,
    the classifier left out (a new competition replaces it). A mismatch raises RecipeError naming the
    first tensor that differs; nothing is loaded halfway.

    Tensors are matched module by module, in order (a module: the keys before their last part), and
    within a module by their last part (weight, bias, running_mean, ...), so that a port that lists a
    layer's tensors in another order still maps; every pair's shape is checked. The file's classifier
    (if it has one) is the module shaped like the model's, wherever the file puts it.

    `first_conv`: the stem convolution's key prefix; when the model takes other than three input
    channels, its RGB filters are adapted as timm adapts them (summed for one channel, repeated for more).
    """
    skip = classifier_keys(model)
    own = [(k, v) for k, v in model.state_dict().items() if k not in skip]
    for prefix in ("", *WRAPPER_PREFIXES):  # renaming rules: keys that match once a prefix is dropped
        renamed = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if all(k in renamed for k, _ in own):
            return {k: _adapted(renamed[k], v, k, first_conv, path, arch, f"tensor '{prefix}{k}'") for k, v in own}
    own_modules = _modules(own)
    given = _modules(list(state.items()))
    classifier = _modules([(k, v) for k, v in model.state_dict().items() if k in skip])
    # the file's classifier, if it has one: a module shaped like the model's, most often the file's last
    (head_parts,) = classifier.values() if len(classifier) == 1 else ({},)
    candidates = [name for name, parts in given.items() if head_parts and _like_classifier(parts, head_parts)]
    attempts = [{n: p for n, p in given.items() if n != c} for c in reversed(candidates)] + [given]
    errors = []
    for modules in attempts:
        try:
            return _map_modules(modules, own_modules, len(state), len(own) + len(skip), first_conv, path, arch)
        except _Mismatch as exc:
            errors.append(exc)
    raise max(errors, key=lambda e: e.matched).error  # the reading that went furthest says what differs


class _Mismatch(Exception):
    def __init__(self, error: RecipeError, matched: int):
        self.error, self.matched = error, matched


def _modules(items: list[tuple[str, object]]) -> dict[str, dict[str, object]]:
    """{module prefix: {last part: tensor}} in the order the modules first appear."""
    modules: dict[str, dict[str, object]] = {}
    for key, value in items:
        module, _, part = key.rpartition(".")
        modules.setdefault(module, {})[part] = value
    return modules


def _like_classifier(parts: dict, head_parts: dict) -> bool:
    """A file's module that could be the classifier: the same tensors as the model's, the same input width."""
    if set(parts) != set(head_parts) or "weight" not in parts:
        return False
    weight, own_weight = parts["weight"], head_parts["weight"]
    return weight.ndim == own_weight.ndim and weight.shape[1:] == own_weight.shape[1:]


def _map_modules(given: dict, own: dict, file_count: int, model_count: int, first_conv: str | None, path: Path,
                 arch: str) -> dict:
    """{model key: the file's tensor}, module i of the file for module i of the model; _Mismatch at the first
    that differs, with how many modules matched before it."""
    mapped = {}
    for i, ((module, parts), (file_module, file_parts)) in enumerate(zip(own.items(), given.items())):
        if set(parts) != set(file_parts):
            raise _Mismatch(RecipeError(
                f"model.pretrained: {path} does not fit {arch}: module {i} '{file_module}' holds "
                f"{', '.join(sorted(file_parts))}, where {arch}'s '{module}' has {', '.join(sorted(parts))}; are these "
                f"{arch} weights?"), i)
        for part, value in parts.items():
            key, file_key = f"{module}.{part}".lstrip("."), f"{file_module}.{part}".lstrip(".")
            try:
                mapped[key] = _adapted(file_parts[part], value, key, first_conv, path, arch,
                                       f"tensor '{file_key}' (for '{key}')")
            except RecipeError as exc:
                raise _Mismatch(exc, i) from None
    if len(given) != len(own):
        shorter = len(given) < len(own)
        module = list(own if shorter else given)[min(len(own), len(given))]
        where = (f"{arch}'s module '{module}' has no counterpart in the file" if shorter
                 else f"the file's module '{module}' is one more than {arch} has")
        raise _Mismatch(RecipeError(f"model.pretrained: {path} does not fit {arch}: {where}; the file holds "
                                    f"{file_count} tensors, {arch} {model_count} (with its classifier)"),
                        min(len(own), len(given)))
    return mapped


def _adapted(tensor, value, key: str, first_conv: str | None, path: Path, arch: str, named: str):
    """The file's tensor for the model's `key`, its input channels adapted at the stem; refused if its shape differs."""
    if (first_conv and key == f"{first_conv}.weight" and tensor.ndim == 4 and value.ndim == 4
            and tensor.shape[1] != value.shape[1]):
        from timm.models import adapt_input_conv

        tensor = adapt_input_conv(value.shape[1], tensor)
    if tensor.shape != value.shape:
        raise RecipeError(f"model.pretrained: {path} does not fit {arch}: {named} has shape "
                          f"{list(tensor.shape)} where {arch} expects {list(value.shape)}; are these {arch} weights "
                          f"with the same model.params?")
    return tensor


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
