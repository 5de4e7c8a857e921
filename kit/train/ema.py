"""An exponential moving average of the weights, the copy that validates and predicts when a recipe asks for it.

timm's ModelEmaV3 does the averaging (parameters and batch-norm buffers, in place, foreach). Its
decay warm-up, decay = min(ema_decay, 1 - (1 + step) ** -2/3), matters on short runs: a fixed 0.999
over a few hundred steps would still mostly remember the random initial weights.
"""

from __future__ import annotations

from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float):
        from timm.utils import ModelEmaV3

        self.average = ModelEmaV3(model, decay=decay, use_warmup=True)
        self.steps = 0

    def update(self, model: nn.Module) -> None:
        """Call after every optimizer step."""
        self.steps += 1
        self.average.update(model, step=self.steps)

    @property
    def module(self) -> nn.Module:
        """The averaged model (always in eval mode)."""
        return self.average.module

    # part of a resumable training state (the averaged weights and how far the decay warm-up has got)
    def state_dict(self) -> dict:
        return {"module": self.module.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["module"])
        self.steps = state["steps"]
