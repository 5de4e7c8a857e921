"""The network of airbench94 (Keller Jordan 2024): 94% on CIFAR-10 in a few seconds on one GPU.

Kept from airbench: the 2x2 patch-whitening stem whose filters are computed from the data
(then fixed; its bias trains, for the first `whiten_bias_epochs` only when given), identity
(dirac) initialised 3x3 convs, batch norm with a fixed scale, a high running-statistics momentum
and a tiny epsilon, GELU, a global max-pool and logits scaled by 1/9. The training method is the
recipe's (recipes/cifar10/airbench94.yaml, docs/airbench.md).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .._registry import register_model
from .layers import Head, ScratchNet, check_widths, pool_if_room


class PatchWhitening(nn.Conv2d):
    """A k x k conv whose filters whiten the k x k patches of training images, then stay fixed.

    airbench computes them from 5,000 training images before training: the training loop does so
    through `init_from_data` when the recipe sets train.init_images; otherwise they come from the
    first training batch, which keeps the net self-contained. The filters come in +/- pairs
    so that the GELU after them loses nothing. The buffer `whitened` saves the flag with the weights;
    a plain attribute mirrors it so that the forward pass never reads a GPU tensor back to the host.
    """

    def __init__(self, in_ch: int, kernel: int = 2, eps: float = 5e-4, bias_epochs: int | None = None):
        super().__init__(in_ch, 2 * in_ch * kernel * kernel, kernel, padding=0, bias=True)
        self.eps, self.bias_epochs = eps, bias_epochs
        self.weight.requires_grad_(False)
        self.register_buffer("whitened", torch.tensor(False))
        self.is_whitened = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not self.is_whitened:
            self.whiten_from(x)
        return super().forward(x)

    def init_from_data(self, images: torch.Tensor) -> None:
        """The training loop's hook: whiten from these (normalised) images before the first step."""
        self.whiten_from(images.to(self.weight.device))

    def epoch_start(self, epoch: int) -> None:
        """The training loop's hook: the bias trains in the first bias_epochs epochs only."""
        if self.bias_epochs is not None:
            self.bias.requires_grad_(epoch < self.bias_epochs)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.is_whitened = bool(self.whitened)

    @torch.no_grad()
    def whiten_from(self, x: torch.Tensor) -> None:
        c, (h, w) = x.shape[1], self.kernel_size
        with torch.autocast(x.device.type, enabled=False):  # an eigendecomposition wants fp32
            patches = x.float().unfold(2, h, 1).unfold(3, w, 1).transpose(1, 3).reshape(-1, c * h * w)
            covariance = patches.T @ patches / len(patches)
            eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
            # rows: eigenvectors scaled to unit variance, the largest first
            filters = (eigenvectors.T / torch.sqrt(eigenvalues + self.eps)[:, None]).flip(0).reshape(-1, c, h, w)
        self.weight.copy_(torch.cat([filters, -filters]).to(self.weight.dtype))
        self.bias.zero_()
        self.whitened.fill_(True)
        self.is_whitened = True


class DiracConv(nn.Conv2d):
    """A bias-free 3x3 conv whose first filters start as the identity: an implicit residual at init."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(in_ch, out_ch, 3, padding=1, bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.in_channels])


class FixedScaleBatchNorm(nn.BatchNorm2d):
    """airbench's batch norm: the scale stays 1, only the shift trains; running statistics move fast."""

    def __init__(self, ch: int):
        super().__init__(ch, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Sequential):
    """conv, max-pool, BN, GELU, conv, BN, GELU: airbench's unit, one per resolution."""

    def __init__(self, in_ch: int, out_ch: int, pool: nn.Module):
        super().__init__(DiracConv(in_ch, out_ch), pool, FixedScaleBatchNorm(out_ch), nn.GELU(),
                         DiracConv(out_ch, out_ch), FixedScaleBatchNorm(out_ch), nn.GELU())


@register_model
def airbench(num_classes: int, in_chans: int, image_size: int, widths: list[int] = (64, 256, 256),
             whiten_kernel: int = 2, scale: float = 1 / 9, whiten_bias_epochs: int | None = None) -> nn.Module:
    """The fast net of airbench94 (Keller Jordan 2024; 94% on CIFAR-10 in seconds): whitened 2x2 stem, three conv-pool-BN-GELU groups, max-pooled head scaled by 1/9."""
    widths = check_widths(widths, stages=3)
    if not 1 <= whiten_kernel <= image_size:
        raise ValueError(f"whiten_kernel must be between 1 and the image size ({image_size}), got {whiten_kernel}")
    if whiten_bias_epochs is not None and (not isinstance(whiten_bias_epochs, int) or whiten_bias_epochs < 0):
        raise ValueError(f"whiten_bias_epochs must be a whole number of epochs (0 or more), got {whiten_bias_epochs}")
    stem = PatchWhitening(in_chans, whiten_kernel, bias_epochs=whiten_bias_epochs)
    stages = OrderedDict(stem=nn.Sequential(stem, nn.GELU()))
    ch, size = stem.out_channels, image_size - whiten_kernel + 1
    for i, width in enumerate(widths, start=1):
        pool, size = pool_if_room(size)
        stages[f"stage{i}"] = ConvGroup(ch, width, pool)
        ch = width
    stages["head"] = Head(ch, num_classes, pool="max", bias=False, scale=scale)
    return ScratchNet(stages)
