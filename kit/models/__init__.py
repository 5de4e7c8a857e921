"""Architectures by name: scratch nets registered here, and (later) any timm model as timm/<name>."""

from . import scratch  # noqa: F401  (registers the scratch nets)
from .registry import check_model, create_model, list_models, model_description, register_model

__all__ = ["build_model", "check_model", "create_model", "list_models", "model_description", "register_model"]


def build_model(model_cfg, num_classes: int, in_chans: int, image_size: int):
    """The network a recipe's `model` section describes."""
    return create_model(model_cfg.arch, num_classes=num_classes, in_chans=in_chans, image_size=image_size,
                        **model_cfg.params)
