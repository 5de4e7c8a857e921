"""Residual nets for small images: a CIFAR-style ResNet, and Page's ResNet-9."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .._registry import register_model
from .layers import Head, ScratchNet, check_widths, conv_bn, pool_if_room


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1-projected) shortcut (He et al. 2016)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.conv1 = nn.Sequential(*conv_bn(in_ch, out_ch, stride=stride))
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
    widths = check_widths(widths)
    if blocks_per_stage < 1:
        raise ValueError(f"blocks_per_stage must be at least 1, got {blocks_per_stage}")
    stages = OrderedDict(stem=nn.Sequential(*conv_bn(in_chans, widths[0])))
    ch, size = widths[0], image_size
    for i, width in enumerate(widths, start=1):
        stride = 2 if i > 1 and size >= 2 else 1
        size = size // stride
        stages[f"stage{i}"] = nn.Sequential(*[BasicBlock(ch if b == 0 else width, width, stride if b == 0 else 1)
                                              for b in range(blocks_per_stage)])
        ch = width
    stages["head"] = Head(ch, num_classes, dropout)
    return ScratchNet(stages)


class Residual(nn.Module):
    """x + f(x): Page's residual branch of two conv-BN-ReLU layers."""

    def __init__(self, ch: int):
        super().__init__()
        self.branch = nn.Sequential(*conv_bn(ch, ch), *conv_bn(ch, ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.branch(x)


@register_model
def resnet9(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (64, 128, 256, 512),
            dropout: float = 0.0, scale: float = 0.125) -> nn.Module:
    """ResNet-9 from David Page's "How to train your ResNet" (Myrtle.ai, DAWNBench 2018): prep conv, three conv-pool stages with residual pairs after the first and last, max-pooled head scaled by 1/8."""
    prep, w1, w2, w3 = check_widths(widths, stages=4)
    stages, size = OrderedDict(stem=nn.Sequential(*conv_bn(in_chans, prep))), image_size
    for i, (ch_in, ch_out, residual) in enumerate([(prep, w1, True), (w1, w2, False), (w2, w3, True)], start=1):
        pool, size = pool_if_room(size)
        layers = [*conv_bn(ch_in, ch_out), pool] + ([Residual(ch_out)] if residual else [])
        stages[f"stage{i}"] = nn.Sequential(*layers)
    # Page's head: global max-pool, a bias-free linear layer, logits scaled by 1/8
    stages["head"] = Head(w3, num_classes, dropout, pool="max", bias=False, scale=scale)
    return ScratchNet(stages)
