"""Transfer learning: which layers train in which epoch, and at what learning rate.

The network is cut into stages from input to output: a timm model's own coarse grouping
(`group_matcher`: stem, each stage, the neck), a scratch net's top-level stages; the classifier
(`get_classifier()`) is always the last stage, and always trains. Then:

  linear_probe           only the classifier trains (the backbone is a fixed feature extractor)
  freeze_then_unfreeze   the classifier alone for `freeze_epochs`, so that a random head does not
                         wreck the pretrained features, then every layer
  gradual                ULMFiT's gradual unfreezing (Howard & Ruder 2018): the classifier, then one
                         more stage from the top every `epochs_per_stage` epochs
  layer_decay            layer-wise lr decay (BEiT, ELECTRA): lower stages learn more slowly
  freeze_bn              batch norm keeps its pretrained statistics (timm's freeze_batch_norm_2d)
  embeddings             the backbone never trains: its features are cached (kit/features.py) and
                         a head trains on them (kit/train/embeddings.py); here the model is that head,
                         and all of it trains

Freezing is `requires_grad = False`: the optimizer holds every parameter from the start and skips
those without a gradient, so unfreezing needs no new optimizer. A batch-norm layer whose weights
are frozen is also kept in eval mode, so that its running statistics stay put too.
"""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..recipe import FinetuneConfig


class Finetune:
    """The schedule for one model: call param_groups() to build the optimizer, start_epoch() before each epoch."""

    def __init__(self, model: nn.Module, cfg: FinetuneConfig):
        self.cfg = cfg
        if cfg.freeze_bn:
            from timm.layers import freeze_batch_norm_2d

            freeze_batch_norm_2d(model)  # converts in place; a frozen BN has buffers, no parameters
        # only what trains to begin with can be unfrozen (airbench's whitening filters stay fixed, say)
        self.stages = [[p for p in stage if p.requires_grad] for stage in model_stages(model)]
        self.stages = [stage for stage in self.stages if stage]

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups, one per stage with its own lr under layer-wise decay, else one group."""
        if self.cfg.layer_decay is None:
            return [{"params": [p for stage in self.stages for p in stage]}]
        n = len(self.stages)
        return [{"params": stage, "lr": lr * self.cfg.layer_decay ** (n - 1 - i)} for i, stage in enumerate(self.stages)]

    def trainable_stages(self, epoch: int) -> int:
        """How many stages, counted from the classifier down, train in `epoch` (0-based)."""
        n, cfg = len(self.stages), self.cfg
        if cfg.mode == "linear_probe":
            return 1
        if cfg.mode == "freeze_then_unfreeze":
            return 1 if epoch < cfg.freeze_epochs else n
        if cfg.mode == "gradual":
            return min(n, 1 + epoch // cfg.epochs_per_stage)
        return n

    def start_epoch(self, model: nn.Module, epoch: int) -> None:
        """Put `model` in training mode with this epoch's stages trainable and the rest frozen."""
        model.train()
        if self.cfg.mode in ("full", "embeddings"):
            return
        first_trainable = len(self.stages) - self.trainable_stages(epoch)
        for i, stage in enumerate(self.stages):
            for p in stage:
                p.requires_grad_(i >= first_trainable)
        for module in model.modules():
            params = list(module.parameters(recurse=False))
            if isinstance(module, _BatchNorm) and params and not any(p.requires_grad for p in params):
                module.eval()


def model_stages(model: nn.Module) -> list[list[nn.Parameter]]:
    """The model's parameters cut into stages from input to output, the classifier's alone and last."""
    classifier = list(model.get_classifier().parameters()) if hasattr(model, "get_classifier") else []
    if not classifier:  # a model without timm's contract: its last linear layer is the classifier
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        classifier = list(linears[-1].parameters()) if linears else []
    in_classifier = {id(p) for p in classifier}
    if hasattr(model, "group_matcher"):
        from timm.models import group_parameters

        params = dict(model.named_parameters())
        grouped = group_parameters(model, model.group_matcher(coarse=True))
        stages = [[params[name] for name in grouped[i]] for i in sorted(grouped)]
    else:
        stages = [list(child.parameters()) for child in model.children()]
    stages = [[p for p in stage if id(p) not in in_classifier] for stage in stages]
    grouped_ids = in_classifier | {id(p) for stage in stages for p in stage}
    ungrouped = [p for p in model.parameters() if id(p) not in grouped_ids]  # a model's own tensors (a token, say)
    return [stage for stage in [ungrouped, *stages] if stage] + [classifier]
