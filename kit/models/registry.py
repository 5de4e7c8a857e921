"""A registry of architectures, as in timm: a name maps to a builder.

    @register_model
    def vgg_small(num_classes, in_chans, image_size, **params) -> nn.Module

`create_model("vgg_small", num_classes=10, in_chans=1, image_size=16, widths=[32, 64])` builds one.
Names that start with `timm/` are handed to timm (see timm_models.py).
"""

from __future__ import annotations

import inspect
from typing import Callable

from ..errors import RecipeError, did_you_mean

_MODELS: dict[str, Callable] = {}


def register_model(fn: Callable) -> Callable:
    if fn.__name__ in _MODELS:
        raise ValueError(f"model '{fn.__name__}' is registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def model_entrypoint(name: str) -> Callable:
    if name not in _MODELS:
        raise RecipeError(f"model.arch: unknown architecture '{name}'{did_you_mean(name, _MODELS)}; "
                          f"scratch nets are: {', '.join(list_models())}; "
                          f"for a timm model write timm/<name>, e.g. timm/resnet50")
    return _MODELS[name]


def model_description(name: str) -> str:
    """The first line of the builder's docstring: where the architecture comes from."""
    doc = inspect.getdoc(model_entrypoint(name)) or ""
    return doc.splitlines()[0] if doc else ""


def check_model(name: str, params: dict) -> None:
    """Fail early (at recipe load) on an unknown architecture or parameter, without building anything."""
    builder = model_entrypoint(name)
    accepted = inspect.signature(builder).parameters
    unknown = [p for p in params if p not in accepted]
    if unknown:
        allowed = [p for p in accepted if p not in ("num_classes", "in_chans", "image_size")]
        raise RecipeError(f"model.params.{unknown[0]}: '{name}' takes no such parameter"
                          f"{did_you_mean(unknown[0], allowed)}; it takes: {', '.join(allowed)}")


def create_model(name: str, num_classes: int, in_chans: int, image_size: int, **params):
    check_model(name, params)
    builder = model_entrypoint(name)
    try:
        return builder(num_classes=num_classes, in_chans=in_chans, image_size=image_size, **params)
    except (TypeError, ValueError) as exc:
        raise RecipeError(f"model.params: '{name}' cannot be built with {params}: {exc}") from None
