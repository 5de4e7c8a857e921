"""The VGG-style CNNs competitors build first, and AlexNet adapted to small images."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .._registry import register_model
from .layers import Head, ScratchNet, check_widths, conv_bn, pool_if_room


@register_model
def vgg_small(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (32, 64, 128),
              convs_per_stage: int = 2, dropout: float = 0.3, batch_norm: bool = True, fc_width: int = 0) -> nn.Module:
    """The VGG-style CNN family (Simonyan & Zisserman 2014, scaled down): per stage N x conv-BN-ReLU, max-pool, dropout."""
    # depth = len(widths) stages x convs_per_stage convs; fc_width > 0 adds the hidden dense layer of the classic Keras CNN
    widths = check_widths(widths)
    if convs_per_stage < 1:
        raise ValueError(f"convs_per_stage must be at least 1, got {convs_per_stage}")
    stages, ch, size = OrderedDict(), in_chans, image_size
    for i, width in enumerate(widths, start=1):
        layers = []
        for _ in range(convs_per_stage):
            layers += conv_bn(ch, width, batch_norm=batch_norm)
            ch = width
        pool, size = pool_if_room(size)
        stages[f"stage{i}"] = nn.Sequential(*layers, pool, nn.Dropout(dropout / 2))
    stages["head"] = Head(ch, num_classes, dropout, hidden=(fc_width,) if fc_width else ())
    return ScratchNet(stages)


@register_model
def alexnet_small(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (64, 192, 384, 256, 256),
                  fc_width: int = 1024, dropout: float = 0.5, batch_norm: bool = False) -> nn.Module:
    """AlexNet (Krizhevsky et al. 2012) adapted to 32x32: 5x5/3x3 stride-1 convs for the 11x11 stride-4 stem, no LRN, two dropout dense layers."""
    # the original's shape: conv5-pool, conv5-pool, conv3 x3-pool, then two wide dense layers; overlapping 3x3/2 pools
    c1, c2, c3, c4, c5 = check_widths(widths, stages=5)
    size = image_size

    def pool():
        nonlocal size
        size = (size + 1) // 2  # a 3x3 stride-2 pool with padding 1 takes any size down to 1 px and stops there
        return nn.MaxPool2d(3, stride=2, padding=1)

    stages = OrderedDict()
    stages["stage1"] = nn.Sequential(*conv_bn(in_chans, c1, kernel=5, batch_norm=batch_norm), pool())
    stages["stage2"] = nn.Sequential(*conv_bn(c1, c2, kernel=5, batch_norm=batch_norm), pool())
    stages["stage3"] = nn.Sequential(*conv_bn(c2, c3, batch_norm=batch_norm), *conv_bn(c3, c4, batch_norm=batch_norm),
                                     *conv_bn(c4, c5, batch_norm=batch_norm), pool())
    # at 32 px the last map is 4x4, flattened into the dense layers as AlexNet's 6x6 was
    stages["head"] = Head(c5, num_classes, dropout, hidden=(fc_width, fc_width), grid=min(4, size))
    return ScratchNet(stages)
