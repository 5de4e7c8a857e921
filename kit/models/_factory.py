"""Models by name, as timm's _factory.py: checked at recipe load, built at training.

`create_model("vgg_small", num_classes=10, in_chans=1, image_size=16, widths=[32, 64])` builds a
scratch net from the registry (_registry.py); `timm/<name>` builds timm's. Both kinds go through
check_model (at recipe load, nothing built but a shape-only copy) and create_model (at training).
"""

from __future__ import annotations

import inspect
from pathlib import Path

from torch import nn

from ..errors import RecipeError, did_you_mean
from ._registry import BUILDER_ARGS, build_scratch, is_timm, model_entrypoint, timm_name
from .inputs import check_input_size, shape_model


def check_model(name: str, params: dict, pretrained: bool | str = False, image_size: int | None = None,
                in_chans: int = 3) -> None:
    """Fail early (at recipe load) on an unknown architecture, parameter or weights file, or a too small image size.

    Nothing is downloaded and no weights are allocated: timm models are checked on the meta device.
    """
    from . import timm_models, weight_packages, weights

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
        if is_timm(name) and weight_packages.is_package(pretrained):
            weight_packages.check_arch(pretrained, timm_name(name))
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


def create_model(name: str, num_classes: int, in_chans: int, image_size: int, pretrained: bool | str = False,
                 **params) -> nn.Module:
    """The network, with weights from `pretrained` (True: timm's download; a path: that file) and a new classifier."""
    from . import timm_models, weights

    check_model(name, params, pretrained, image_size, in_chans)
    if is_timm(name):
        return timm_models.create(timm_name(name), num_classes, in_chans, pretrained, params)
    model = build_scratch(name, num_classes, in_chans, image_size, params)
    if isinstance(pretrained, str):
        weights.load_backbone(model, pretrained, name)
    return model
