"""Optimizers and learning-rate schedules from a recipe's train section.

The schedule is a multiplier on each parameter group's base learning rate, set every step:
a linear warmup, then constant, cosine, one-cycle's cosine annealing, step decay, a decay on
plateaus of the validation loss, or airbench's triangle. One small class, one state to checkpoint.

Parameter groups (optimizer_groups) carry their own lr and weight decay: normalisation biases may
learn faster (airbench's bias scaler), and SGD's hyper-parameters may be given in airbench's
decoupled form, converted here into what torch's SGD expects for kit's mean loss.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from ..recipe import OptimizerConfig, SchedulerConfig

NORM_LAYERS = (_NormBase, nn.GroupNorm, nn.LayerNorm)  # _NormBase: batch and instance norm


def norm_biases(model: nn.Module) -> set[int]:
    """The ids of the normalisation layers' bias parameters."""
    return {id(m.bias) for m in model.modules() if isinstance(m, NORM_LAYERS) and getattr(m, "bias", None) is not None}


def optimizer_groups(model: nn.Module, groups: list[dict], cfg: OptimizerConfig, batch_size: int) -> list[dict]:
    """`groups` (parameters, maybe their own 'lr') -> groups with the 'lr' and 'weight_decay' torch applies.

    Normalisation biases get their own groups at norm_bias_lr_scale times the lr, their weight decay
    divided by it: torch's SGD and Adam decay by lr * weight_decay per step, so the decay stays that of
    every other weight. With cfg.lr_per (airbench's decoupled SGD) cfg.lr and cfg.weight_decay are
    airbench's, whose loss is summed over the batch and whose torch lr is lr / (lr_per * (1 + 1 / (1 -
    momentum))): kit's loss is the batch mean, its gradients 1 / batch_size of the sum's, so the
    torch lr is batch_size times airbench's; the decay per step (lr * weight_decay, airbench's
    weight_decay * batch_size / that same divisor) then needs a torch weight_decay of
    cfg.weight_decay / lr, whatever the batch size.
    """
    biases = norm_biases(model) if cfg.norm_bias_lr_scale != 1 else set()
    out = []
    for group in groups:
        params = list(group["params"])
        split = [([p for p in params if id(p) not in biases], 1.0), ([p for p in params if id(p) in biases],
                                                                    cfg.norm_bias_lr_scale)]
        for members, scale in split:
            if not members:
                continue
            lr = group.get("lr", cfg.lr) * scale
            if cfg.lr_per is None:
                out.append({**group, "params": members, "lr": lr, "weight_decay": cfg.weight_decay / scale})
            else:
                step_gain = cfg.lr_per * (1 + 1 / (1 - cfg.momentum))
                out.append({**group, "params": members, "lr": lr * batch_size / step_gain,
                            "weight_decay": cfg.weight_decay / lr})
    return out


def build_optimizer(params, cfg: OptimizerConfig) -> torch.optim.Optimizer:
    """`params`: parameters or parameter groups (groups may carry their own 'lr')."""
    kw = dict(lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0, **kw)
    if cfg.name == "adam":
        return torch.optim.Adam(params, **kw)
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, **kw)
    if cfg.name == "adamax":
        return torch.optim.Adamax(params, **kw)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, momentum=cfg.momentum, **kw)
    raise ValueError(f"unknown optimizer {cfg.name!r}")  # the recipe schema makes this unreachable


class LRSchedule:
    """Sets every group's lr to base_lr * factor; call step() after each batch, epoch_end() after each epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, epochs: int, steps_per_epoch: int):
        self.optimizer, self.cfg = optimizer, cfg
        self.epochs, self.steps_per_epoch = epochs, max(1, steps_per_epoch)
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.step_count = 0
        self.plateau_scale, self.best_loss, self.bad_epochs = 1.0, math.inf, 0
        self._apply()

    def factor(self, t: float) -> float:
        """The lr multiplier at fractional epoch t."""
        cfg, total = self.cfg, float(self.epochs)
        if cfg.name == "triangle":
            p, peak = min(t / total, 1.0), cfg.peak_at
            if p < peak:
                return cfg.start_lr_ratio + (1 - cfg.start_lr_ratio) * p / peak
            return 1 + (cfg.min_lr_ratio - 1) * (p - peak) / (1 - peak)
        if cfg.name == "onecycle":
            # Smith & Topin's one-cycle as torch's OneCycleLR: cosine up from lr/25 over the
            # warm-up share (default 30%), then cosine down to lr/25e4
            rise = cfg.warmup_epochs / total if cfg.warmup_epochs else 0.3
            p = min(t / total, 1.0)
            if p < rise:
                return _cos_between(1 / 25, 1.0, p / rise)
            return _cos_between(1.0, 1 / 25e4, (p - rise) / max(1e-8, 1 - rise))
        warm = cfg.warmup_epochs
        if t < warm:
            return (t + 1 / self.steps_per_epoch) / warm
        if cfg.name == "constant":
            return 1.0
        if cfg.name == "cosine":
            p = min((t - warm) / max(1e-8, total - warm), 1.0)
            return _cos_between(1.0, cfg.min_lr_ratio, p)
        if cfg.name == "step":
            return cfg.gamma ** int((t - warm) // cfg.step_size)
        if cfg.name == "plateau":
            return self.plateau_scale
        raise ValueError(f"unknown schedule {cfg.name!r}")

    def _apply(self) -> None:
        f = self.factor(self.step_count / self.steps_per_epoch)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def epoch_end(self, val_loss: float) -> None:
        if self.cfg.name != "plateau":
            return
        if val_loss < self.best_loss - 1e-4:
            self.best_loss, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.patience:
                self.plateau_scale *= self.cfg.gamma
                self.bad_epochs = 0
        self._apply()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("step_count", "plateau_scale", "best_loss", "bad_epochs", "base_lrs")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._apply()


def _cos_between(start: float, end: float, p: float) -> float:
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(max(p, 0.0), 1.0)))
