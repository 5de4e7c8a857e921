"""Architectures by name: the scratch nets registered here, and any timm model as timm/<name>."""

from . import scratch  # noqa: F401  (registers the scratch nets)
from .inputs import InputSpec, resolve_input
from ._factory import check_model, create_model
from ._registry import is_timm, list_models, model_description, register_model

__all__ = ["InputSpec", "build_model", "check_model", "create_model", "describe_scratch_models", "is_timm",
           "list_models", "model_description", "register_model", "resolve_input"]


def build_model(model_cfg, num_classes: int, in_chans: int, image_size: int):
    """The network a recipe's `model` section describes, with its pretrained weights and a new classifier."""
    return create_model(model_cfg.arch, num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                        pretrained=model_cfg.pretrained, **model_cfg.params)


def describe_scratch_models(num_classes: int = 10, in_chans: int = 3, image_size: int = 32) -> list[dict]:
    """Each scratch net with its default parameters: name, parameter count at this input, where it comes from."""
    from .inputs import shape_model

    rows = []
    for name in list_models():
        model = shape_model(name, {}, in_chans, image_size, num_classes=num_classes)  # meta device: no memory
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters()),
                     "description": model_description(name)})
    return rows
