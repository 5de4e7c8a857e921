"""Pieces the scratch nets share: conv-BN-ReLU, pooling that stops at 1 px, the classifier head.

Every scratch net is a ScratchNet: named stages in order (stem, stage1, stage2, ..., head), so its
state dict reads `stage2.0.weight`, and transfer learning can freeze or unfreeze it stage by stage
the way timm models are (`get_classifier()` names the layer a new competition replaces).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


class ScratchNet(nn.Sequential):
    """Stages in order, the last one a Head whose `fc` is the classifier."""

    def __init__(self, stages: OrderedDict):
        if next(reversed(stages)) != "head":
            raise ValueError("a ScratchNet's last stage must be its head")
        super().__init__(stages)

    def get_classifier(self) -> nn.Module:
        return self.head.fc


class Head(nn.Sequential):
    """Pool to a `grid` x `grid` map, flatten, optional hidden dense layers, dropout, the classifier `fc`."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0, hidden: tuple[int, ...] = (),
                 grid: int = 1, pool: str = "avg", bias: bool = True, scale: float | None = None):
        pooling = nn.AdaptiveAvgPool2d(grid) if pool == "avg" else nn.AdaptiveMaxPool2d(grid)
        layers = OrderedDict(pool=pooling, flatten=nn.Flatten())
        width = in_features * grid * grid
        for i, h in enumerate(hidden):
            layers[f"drop{i}"] = nn.Dropout(dropout)
            layers[f"hidden{i}"] = nn.Linear(width, h)
            layers[f"act{i}"] = nn.ReLU(inplace=True)
            width = h
        layers["drop"] = nn.Dropout(dropout)
        layers["fc"] = nn.Linear(width, num_classes, bias=bias)
        if scale is not None:
            layers["scale"] = Scale(scale)
        super().__init__(layers)


class Scale(nn.Module):
    """Multiply by a constant: a fixed temperature on the logits (Page's ResNet-9, airbench)."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale:g}"


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, batch_norm: bool = True) -> list[nn.Module]:
    """Conv, batch norm, ReLU as a list of layers (a conv feeding batch norm needs no bias)."""
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm)]
    layers += [nn.BatchNorm2d(out_ch)] if batch_norm else []
    return layers + [nn.ReLU(inplace=True)]


def pool_if_room(size: int) -> tuple[nn.Module, int]:
    """2x2 max-pooling while the map is at least 2 px wide, so that one net serves 8 px to 64 px inputs."""
    return (nn.MaxPool2d(2), size // 2) if size >= 2 else (nn.Identity(), size)


def check_widths(widths, stages: int | None = None) -> list[int]:
    widths = list(widths)
    if not widths or any(not isinstance(w, int) or w <= 0 for w in widths):
        raise ValueError(f"widths must be a list of positive integers, got {widths}")
    if stages is not None and len(widths) != stages:
        raise ValueError(f"widths must list {stages} stage widths, got {len(widths)}")
    return widths
