"""Optimizers and learning-rate schedules, for pretraining (07, 10, 11) and fine-tuning (08).

- :func:`param_groups`: which parameters decay (weight matrices; not biases, norm scales, optionally embeddings),
  and which learn at a head's own rate;
- :func:`adamw` (BERT) and :func:`stable_adamw` (ModernBERT): optimizer factories in the shape the Trainer takes;
- :func:`wsd_factor`: the one schedule formula. Warmup, then a stable phase, then a decay: BERT's linear warmup and
  decay (:func:`linear_warmup_decay`) is the case with no stable phase, ModernBERT's trapezoid (:func:`wsd`) the
  case with one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

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


def param_groups(
    model: nn.Module,
    weight_decay: float,
    decay_embeddings: bool = True,
    head: Sequence[nn.Parameter] = (),
    head_lr: float | None = None,
) -> list[dict]:
    """Optimizer groups: weight decay on the weight matrices only, never on biases or norm scales (BERT's recipe),
    nor on the embedding tables with ``decay_embeddings=False`` (ModernBERT's). Parameters in ``head`` (a freshly
    initialised classifier) learn at ``head_lr``. Frozen parameters are left out; a tied weight is listed once.
    """
    head_ids = {id(p) for p in head}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():  # a tied weight is listed once
        if not p.requires_grad:
            continue
        decays = p.dim() >= 2 and (decay_embeddings or "embeddings" not in name)
        groups.setdefault((decays, id(p) in head_ids), []).append(p)
    out = []
    for (decays, is_head), params in sorted(groups.items(), key=lambda kv: (kv[0][1], not kv[0][0])):
        group = {"params": params, "weight_decay": weight_decay if decays else 0.0}
        if is_head and head_lr is not None:
            group["lr"] = head_lr
        out.append(group)
    return out


def can_fuse(model: nn.Module) -> bool | None:
    """The fused AdamW kernel updates all parameters in one pass (4x faster than the default loop on a CPU)."""
    return all(p.device.type in ("cpu", "cuda") for p in model.parameters()) or None


def adamw(model: nn.Module, config) -> torch.optim.AdamW:
    """BERT's optimizer for the Trainer: AdamW with the config's lr, betas, eps and weight decay on matrices."""
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas,
                             eps=config.eps, fused=can_fuse(model))  # fmt: skip


def stable_adamw(model: nn.Module, config) -> StableAdamW:
    """ModernBERT's optimizer for the Trainer: StableAdamW, no decay on embeddings.

    StableAdamW clips each update itself: train with ``max_grad_norm=None`` (no gradient clipping).
    """
    groups = param_groups(model, config.weight_decay, decay_embeddings=False)
    return StableAdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps)


def wsd_factor(
    step: int, total_steps: int, warmup_steps: int, decay_steps: int, min_factor: float = 0.0, shape: str = "linear"
) -> float:
    """The multiplier of the peak learning rate at ``step`` (from 0): warmup, stable, decay (a trapezoid).

    warmup (``step < warmup_steps``): ``(step + 1) / (warmup_steps + 1)``, reaching 1 at the first stable step;
    stable: 1; decay (the last ``decay_steps``): from 1 down to ``min_factor`` at ``step == total_steps``, linearly
    or, with ``shape="1-sqrt"``, as 1 - sqrt(progress) (Hägele et al., 2024). The long flat middle means training
    can stop or continue from any checkpoint there; only the decay needs to know when training ends.
    """
    if not 0 <= warmup_steps + decay_steps <= total_steps:
        raise ValueError(f"warmup ({warmup_steps}) + decay ({decay_steps}) steps exceed the {total_steps} total")
    if shape not in ("linear", "1-sqrt"):
        raise ValueError(f"unknown decay shape {shape!r}; use 'linear' or '1-sqrt'")
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_start = total_steps - decay_steps
    if step < decay_start:
        return 1.0
    remaining = max(0.0, (total_steps - step) / decay_steps)  # 1 at the decay's first step, 0 at total_steps
    f = remaining if shape == "linear" else 1.0 - math.sqrt(1.0 - remaining)
    return min_factor + (1.0 - min_factor) * f


def _steps(amount: float, total_steps: int) -> int:
    """A fraction of the run (below 1) or a number of steps."""
    return round(amount * total_steps) if amount < 1 else int(amount)


def wsd(
    warmup: float = 0.1, decay: float = 0.2, min_factor: float = 0.0, shape: str = "linear"
) -> Callable[[int, int], float]:
    """ModernBERT's warmup-stable-decay schedule as ``f(step, total_steps)``; warmup and decay are fractions of the
    run (below 1) or numbers of steps."""

    def schedule(step: int, total_steps: int) -> float:
        w = _steps(warmup, total_steps)
        return wsd_factor(step, total_steps, w, _steps(decay, total_steps), min_factor, shape)

    return schedule


def linear_warmup_decay(warmup: float = 0.06) -> Callable[[int, int], float]:
    """BERT's schedule as ``f(step, total_steps)``: rise linearly to 1 over the warmup, then fall linearly to 0 at the
    end; :func:`wsd_factor` with no stable phase. ``warmup`` is a fraction of the run (below 1) or a number of steps.
    """

    def schedule(step: int, total_steps: int) -> float:
        w = _steps(warmup, total_steps)
        return wsd_factor(step, total_steps, w, total_steps - w)

    return schedule


def warmup_then_decay(warmup: float, decay: float | None = None) -> Callable[[int, int], float]:
    """BERT's linear decay over the whole run (``decay=None``), or warmup-stable-decay with ``decay`` the share of
    the run spent decaying, as 1 - sqrt (chapter 07's recipe)."""
    return linear_warmup_decay(warmup) if decay is None else wsd(warmup, decay, shape="1-sqrt")


def lr_scheduler(
    optimizer: torch.optim.Optimizer, schedule: Callable[[int, int], float], total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A torch LambdaLR that follows ``schedule(step, total_steps)`` (e.g. :func:`wsd` or :func:`linear_warmup_decay`).

    The schedule is checked at step 0, so a bad setting fails now, not at the first step.
    """
    schedule(0, total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: schedule(step, total_steps))
