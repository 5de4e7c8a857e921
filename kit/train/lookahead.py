"""airbench's Lookahead-EMA: an average of the weights that is written back into them.

Unlike an EMA kept beside the model (kit/train/ema.py), the network itself is set to the average
each time it is updated, as the Lookahead optimizer's slow weights are (Zhang et al. 2019): from
`start_epoch` on, every `every` steps,

    average = rho * average + (1 - rho) * weights;  weights = average
    rho = decay_base ** every * (step / total_steps) ** decay_pow

so the averaging starts weak and grows strong toward the end, and at the end of every epoch the
weights are set to the average once more. The first update only takes a copy. Every floating
tensor of the state dict is averaged: parameters and batch-norm running statistics alike.
"""

from __future__ import annotations

import torch
from torch import nn

from ..recipe import LookaheadConfig


class Lookahead:
    def __init__(self, cfg: LookaheadConfig, total_steps: int):
        self.cfg, self.total_steps = cfg, max(1, total_steps)
        self.steps = 0
        self.average: dict[str, torch.Tensor] | None = None

    def rho(self, step: int) -> float:
        cfg = self.cfg
        return cfg.decay_base ** cfg.every * (step / self.total_steps) ** cfg.decay_pow

    @torch.no_grad()
    def update(self, model: nn.Module, epoch: int) -> None:
        """Call after every optimizer step, with the (0-based) epoch it belongs to."""
        self.steps += 1
        if epoch < self.cfg.start_epoch or self.steps % self.cfg.every:
            return
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in _floats(model)}
        else:
            self._pull(model, self.rho(self.steps))

    @torch.no_grad()
    def epoch_end(self, model: nn.Module) -> None:
        """Set the weights to the average (once averaging has begun)."""
        if self.average is not None:
            self._pull(model, 1.0)

    def _pull(self, model: nn.Module, rho: float) -> None:
        for name, tensor in _floats(model):
            average = self.average[name]
            if average.device != tensor.device:  # checkpoints load onto the CPU
                average = self.average[name] = average.to(tensor.device)
            average.lerp_(tensor, 1 - rho)
            tensor.copy_(average)

    # part of a resumable training state
    def state_dict(self) -> dict:
        return {"steps": self.steps, "average": self.average}

    def load_state_dict(self, state: dict) -> None:
        self.steps, self.average = state["steps"], state["average"]


def _floats(model: nn.Module):
    return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]
