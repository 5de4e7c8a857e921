"""A registry of architectures, as in timm: a name maps to a builder.

    @register_model
    def vgg_small(num_classes, in_chans, image_size, **params) -> nn.Module

`create_model("vgg_small", num_classes=10, in_chans=1, image_size=16, widths=[32, 64])` builds one.
Names that start with `timm/` are handed to timm (timm_models.py): `timm/resnet50`, or with a
pretrained tag, `timm/resnet18.a1_in1k`. Both kinds go through check_model (at recipe load,
nothing built but a shape-only copy) and create_model (at training).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from torch import nn

from ..errors import RecipeError, did_you_mean

_MODELS: dict[str, Callable] = {}
TIMM_PREFIX = "timm/"
BUILDER_ARGS = ("num_classes", "in_chans", "image_size")


def register_model(fn: Callable) -> Callable:
    if fn.__name__ in _MODELS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """The scratch nets' names (timm's are listed by `timm.list_models()`)."""
    return sorted(_MODELS)


def is_timm(name: str) -> bool:
    return name.startswith(TIMM_PREFIX)


def timm_name(name: str) -> str:
    """'timm/resnet18.a1_in1k' -> 'resnet18.a1_in1k'."""
    return name[len(TIMM_PREFIX):]


def model_entrypoint(name: str) -> Callable:
    if name not in _MODELS:
        raise RecipeError(f"model.arch: unknown architecture '{name}'{did_you_mean(name, _MODELS)}; "
                          f"scratch nets are: {', '.join(list_models())}; "
                          f"for a timm model write timm/<name>, e.g. timm/resnet50 (kit zoo --timm '*resnet*' lists them)")
    return _MODELS[name]


def model_description(name: str) -> str:
    """The first line of the builder's docstring: where the architecture comes from."""
    doc = inspect.getdoc(model_entrypoint(name)) or ""
    return doc.splitlines()[0] if doc else ""


def check_model(name: str, params: dict, pretrained: bool | str = False, image_size: int | None = None,
                in_chans: int = 3) -> None:
    """Fail early (at recipe load) on an unknown architecture, parameter or weights file, or a too small image size.

    Nothing is downloaded and no weights are allocated: timm models are checked on the meta device.
    """
    from . import timm_models, weights
    from .inputs import check_input_size, shape_model

    if is_timm(name):
        timm_models.check(timm_name(name), params, pretrained)
    else:
        _check_scratch_params(name, params)
        if pretrained is True:
            raise RecipeError(f"model.pretrained: '{name}' is a scratch net and has no published weights; give a "
                              f"weights file (pretrained: path/to/weights.pt, e.g. a fold's weights.pt in the store) "
                              f"or use a pretrained timm model (arch: timm/<name>)")
    if isinstance(pretrained, str):
        weights.check_file(pretrained)
    if image_size is not None:
        check_input_size(name, params, in_chans, image_size)
    elif not is_timm(name):
        shape_model(name, params, in_chans, 32)  # so that bad parameter values fail now, not at training


def _check_scratch_params(name: str, params: dict) -> None:
    accepted = inspect.signature(model_entrypoint(name)).parameters
    unknown = [p for p in params if p not in accepted or p in BUILDER_ARGS]
    if unknown:
        allowed = [p for p in accepted if p not in BUILDER_ARGS]
        raise RecipeError(f"model.params.{unknown[0]}: '{name}' takes no such parameter"
                          f"{did_you_mean(unknown[0], allowed)}; it takes: {', '.join(allowed)}")


def build_scratch(name: str, num_classes: int, in_chans: int, image_size: int, params: dict) -> nn.Module:
    try:
        return model_entrypoint(name)(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **params)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"model.params: '{name}' cannot be built with {params}: {exc}") from None


def create_model(name: str, num_classes: int, in_chans: int, image_size: int, pretrained: bool | str = False,
                 **params) -> nn.Module:
    """The network, with weights from `pretrained` (True: timm's download; a path: that file) and a new classifier."""
    from . import timm_models, weights

    check_model(name, params, pretrained, image_size, in_chans)
    if is_timm(name):
        return timm_models.create(timm_name(name), num_classes, in_chans, pretrained, params)
    model = build_scratch(name, num_classes, in_chans, image_size, params)
    if isinstance(pretrained, str):
        weights.load_backbone(model, Path(pretrained), name)
    return model
