"""ModernBERT's training recipe: the StableAdamW optimizer and the warmup-stable-decay learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn


class StableAdamW(torch.optim.Optimizer):
    """AdamW with Adafactor-style update clipping (Wortsman et al., 2023), as ModernBERT was trained.

    Adam divides by a running average of g^2; when a gradient suddenly grows (a rare token, a loss spike) that
    average lags behind and the step explodes. StableAdamW measures, per parameter tensor,

        RMS_t = sqrt(mean(g_t^2 / v_hat_t))

    (about 1 when gradients are steady) and divides that tensor's learning rate by max(1, RMS_t). This replaces
    gradient clipping. With ``clip=False`` it is exactly AdamW.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        clip: bool = True,
    ) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"lr, eps and weight_decay must be >= 0, got {lr}, {eps}, {weight_decay}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clip=clip))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("StableAdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, g, m, v = state["step"], p.grad, state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                v_hat = v / (1 - beta2**t)
                lr = group["lr"]
                if group["clip"]:
                    rms = (g.square() / v_hat.clamp(min=group["eps"] ** 2)).mean().sqrt()
                    lr = lr / max(1.0, rms.item())
                if group["weight_decay"]:
                    p.mul_(1 - lr * group["weight_decay"])  # decoupled weight decay
                p.addcdiv_(m, v_hat.sqrt_().add_(group["eps"]), value=-lr / (1 - beta1**t))
        return loss


def wsd_factor(
    step: int, total_steps: int, warmup_steps: int, decay_steps: int, min_factor: float = 0.0, shape: str = "linear"
) -> float:
    """Warmup-stable-decay (trapezoidal): rise linearly, hold at the peak, then fall to ``min_factor``.

    The long flat middle means training can stop or continue from any checkpoint there; only the final decay
    needs to know when training ends. ``shape="1-sqrt"`` decays as 1 - sqrt(progress) (Hägele et al., 2024).
    """
    if not 0 <= warmup_steps + decay_steps <= total_steps:
        raise ValueError(f"warmup ({warmup_steps}) + decay ({decay_steps}) steps exceed the {total_steps} total")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start + 1) / max(1, decay_steps))
    if shape == "linear":
        f = 1.0 - progress
    elif shape == "1-sqrt":
        f = 1.0 - math.sqrt(progress)
    else:
        raise ValueError(f"unknown decay shape {shape!r}; use 'linear' or '1-sqrt'")
    return min_factor + (1.0 - min_factor) * f


def wsd_schedule(
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int | float = 0.1,
    decay_steps: int | float = 0.2,
    min_factor: float = 0.0,
    shape: str = "linear",
) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR following :func:`wsd_factor`; fractions (floats < 1) of ``total_steps`` are accepted."""
    warmup = round(warmup_steps * total_steps) if isinstance(warmup_steps, float) else warmup_steps
    decay = round(decay_steps * total_steps) if isinstance(decay_steps, float) else decay_steps
    wsd_factor(0, total_steps, warmup, decay, min_factor, shape)  # validate now, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: wsd_factor(s, total_steps, warmup, decay, min_factor, shape)
    )


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups that decay matrices only: biases, norms and embeddings are left alone (as ModernBERT)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and "embeddings" not in name else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------------------------------------------
# The same, in the shapes minibert.pretrain.Trainer takes (optimizer_factory=..., schedule=...)


def stable_adamw(model: nn.Module, config) -> StableAdamW:
    """Optimizer factory for the Trainer: StableAdamW with the config's lr, betas, eps and weight decay.

    StableAdamW clips each update itself: train with ``max_grad_norm=None`` (no gradient clipping).
    """
    return StableAdamW(
        weight_decay_groups(model, config.weight_decay), lr=config.lr, betas=config.betas, eps=config.eps
    )


def wsd(warmup: float = 0.1, decay: float = 0.2, min_factor: float = 0.0, shape: str = "linear"):
    """Schedule for the Trainer: ``f(step, total_steps)`` of :func:`wsd_factor`, warmup and decay as fractions."""

    def schedule(step: int, total_steps: int) -> float:
        w = round(warmup * total_steps) if warmup < 1 else int(warmup)
        d = round(decay * total_steps) if decay < 1 else int(decay)
        return wsd_factor(step, total_steps, w, d, min_factor, shape)

    return schedule
