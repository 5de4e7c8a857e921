"""Small CNNs trained from scratch, sized for 8-64 px inputs with any number of channels.

Every net ends in global average pooling, so one definition serves every image size; a stage
only downsamples while the feature map is at least 2 px wide.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import register_model


def conv_bn(in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def _pool_if_room(size: int) -> tuple[nn.Module, int]:
    return (nn.MaxPool2d(2), size // 2) if size >= 2 else (nn.Identity(), size)


class Head(nn.Sequential):
    """Global average pool, dropout, linear classifier."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_features, num_classes))


@register_model
def vgg_small(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (32, 64, 128),
              convs_per_stage: int = 2, dropout: float = 0.3, batch_norm: bool = True) -> nn.Module:
    """The VGG-style CNN competitors build first (Simonyan & Zisserman 2014, scaled down): conv-BN-ReLU x N, max-pool, dropout, per stage."""
    if not widths:
        raise ValueError("widths must list at least one stage width")
    layers, ch, size = [], in_chans, image_size
    for width in widths:
        for _ in range(convs_per_stage):
            layers += [nn.Conv2d(ch, width, 3, padding=1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(width)] if batch_norm else []
            layers += [nn.ReLU(inplace=True)]
            ch = width
        pool, size = _pool_if_room(size)
        layers += [pool, nn.Dropout(dropout / 2)]
    return nn.Sequential(*layers, Head(ch, num_classes, dropout))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1-projected) shortcut (He et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(in_ch, out_ch, stride=stride)
        self.conv2 = nn.Sequential(nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch))
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


@register_model
def resnet_small(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (32, 64, 128),
                 blocks_per_stage: int = 1, dropout: float = 0.1) -> nn.Module:
    """A small residual net (He et al. 2016, CIFAR-style): a stem, then one stage of basic blocks per width, each stage after the first halving the size."""
    if not widths:
        raise ValueError("widths must list at least one stage width")
    layers, ch, size = [conv_bn(in_chans, widths[0])], widths[0], image_size
    for i, width in enumerate(widths):
        stride = 2 if i > 0 and size >= 2 else 1
        size = size // stride
        for b in range(blocks_per_stage):
            layers.append(BasicBlock(ch, width, stride if b == 0 else 1))
            ch = width
    return nn.Sequential(*layers, Head(ch, num_classes, dropout))
