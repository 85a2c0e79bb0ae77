"""Exponential moving average of the generator's weights (stylegan2-ada, lucidrains' trainers).

The EMA copy is what evaluation and inference use. Buffers (BatchNorm statistics) are copied,
not averaged, as in stylegan2-ada's ``G_ema`` update.
"""

from __future__ import annotations

import copy

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float, start_step: int = 0):
        self.decay = decay
        self.start_step = start_step
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        # before start_step the EMA tracks the model exactly (averaging a random init is useless)
        decay = self.decay if step >= self.start_step else 0.0
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        if decay == 0.0:
            torch._foreach_copy_(ema_params, params)
        else:
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for ema_buf, buf in zip(self.model.buffers(), model.buffers()):
            ema_buf.copy_(buf)

    # saved in checkpoints (gan_colorize.training.checkpoint)
    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_step": self.start_step, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        # the weights only: decay and start come from the config, so a resumed run may change them
        self.model.load_state_dict(state["model"])
