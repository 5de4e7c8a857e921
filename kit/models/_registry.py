"""A registry of architectures, as timm's _registry.py: a name maps to a builder.

    @register_model
    def vgg_small(num_classes, in_chans, image_size, **params) -> nn.Module

Names that start with `timm/` are timm's (timm_models.py): `timm/resnet50`, or with a pretrained
tag, `timm/resnet18.a1_in1k`. Checking and building a model by name is _factory.py's job.
"""

from __future__ import annotations

import inspect
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


def build_scratch(name: str, num_classes: int, in_chans: int, image_size: int, params: dict) -> nn.Module:
    try:
        return model_entrypoint(name)(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **params)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"model.params: '{name}' cannot be built with {params}: {exc}") from None
