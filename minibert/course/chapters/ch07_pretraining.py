"""Exercises and questions of chapter 07, pretraining (solutions/07_pretraining.ipynb)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...pretrain import IGNORE_INDEX, linear_warmup_decay
from ..spec import Case, Exercise, Question, seeded_tensors


def _mlm_cases() -> list:
    out = []
    for seed in (0, 1):
        (hidden,) = seeded_tensors((4, 16, 32), seed=seed)
        gen = torch.Generator().manual_seed(seed)
        targets = torch.randint(0, 500, (4, 16), generator=gen)
        labels = torch.where(torch.rand(4, 16, generator=gen) < 0.15, targets, IGNORE_INDEX)
        labels[:, 1] = targets[:, 1]  # at least one masked position per row
        torch.manual_seed(seed)
        out.append(Case((hidden, labels, nn.Linear(32, 500)), f"{int((labels != IGNORE_INDEX).sum())} masked"))
    return out


def _mlm_loss_everywhere(hidden, labels, head):
    """The wasteful version: the head on every position, the loss only where a label is set."""
    return F.cross_entropy(head(hidden).flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


class _Recorder(nn.Module):
    """A head that notes the shape of every input it is given."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head, self.shapes = head, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return self.head(x)


def _head_sees_only_masked(fn, args) -> str | None:
    hidden, labels, head = args
    recorder = _Recorder(head)
    fn(hidden, labels, recorder)
    n, (B, T, _) = int((labels != IGNORE_INDEX).sum()), hidden.shape
    seen = sum(math.prod(s[:-1]) for s in recorder.shapes)
    if seen == n:
        return None
    shapes = ", ".join(str(s) for s in recorder.shapes) or "never"
    return (f"the head ran on {seen} vectors (its inputs: {shapes}), but only the {n} masked positions of the "
            f"{B} × {T} have a label. Select them before the head, hidden[labels != -100] (N, C), so that the "
            "vocabulary is scored only where it is needed.")  # fmt: skip


def _clip_reference(grads, max_norm):
    params = [nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params], norm


ITEMS = [
    Exercise(
        id="07.1",
        function="mlm_loss",
        cases=_mlm_cases,
        reference=_mlm_loss_everywhere,
        method=_head_sees_only_masked,
        args=("hidden", "labels", "head"),
        hints=(
            "Only the masked positions have a target. Pick their vectors first, then score the vocabulary on those "
            "alone: the mean cross-entropy over the N masked tokens.",
            "masked = labels != -100 is a (B, T) boolean mask; hidden[masked] is (N, C) and labels[masked] (N,). "
            "The head turns (N, C) into (N, V) logits.",
            "masked = labels != IGNORE_INDEX; return F.cross_entropy(head(hidden[masked]), labels[masked])",
        ),
    ),
    Exercise(
        id="07.2",
        function="lr_multiplier",
        cases=lambda: [(100, 10), (50, 0), (7, 3), (1000, 60)],
        reference=lambda step, total, warmup: linear_warmup_decay(warmup)(step, total),
        call=lambda fn, total, warmup: [fn(s, total, warmup) for s in range(total + 1)],
        args=("total", "warmup"),
        index="step",
        hints=(
            "Two straight lines: up during the warmup, reaching 1 just as it ends, then down to 0 at the last step.",
            "During warmup (step < w) the multiplier is (step + 1) / (w + 1), so that step 0 already trains a "
            "little; afterwards (S - step) / (S - w), never below 0, with max(1, S - w) to avoid dividing by 0.",
            "if step < warmup: return (step + 1) / (warmup + 1); return max(0.0, (total - step) / max(1.0, total - "
            "warmup))",
        ),
    ),
    Exercise(
        id="07.3",
        function="clip_global_norm",
        cases=lambda: [
            (seeded_tensors((10, 5), (5,), (3, 3, 3), seed=s), m) for s, m in ((0, 1.0), (1, 100.0), (2, 0.5))
        ],  # fmt: skip
        reference=_clip_reference,
        args=("grads", "max_norm"),
        returns=("grads", "norm"),
        hints=(
            "One norm for all the gradients together, as if they were one long vector; if it is too large, every "
            "gradient is scaled by the same factor, so the direction does not change.",
            "The global norm is the square root of the sum of every gradient's squared entries. Scale by "
            "max_norm / (norm + 1e-6) only when that factor is below 1; return the norm measured before.",
            "norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).float(); scale = min(1.0, max_norm / "
            "(norm.item() + 1e-6)); return [g * scale for g in grads], norm",
        ),
    ),
    Exercise(
        id="07.4",
        function="top_k_tokens",
        cases=lambda: [(seeded_tensors((3, 1000), seed=s)[0] * 3, k) for s, k in ((0, 5), (1, 1))],
        reference=lambda logits, k: tuple(logits.softmax(-1).topk(k, dim=-1)),
        args=("logits", "k"),
        returns=("probs", "ids"),
        dims=("masked position", "rank"),
        hints=(
            "Probabilities come from a softmax over the whole vocabulary; then keep the k largest at each masked "
            "position, largest first, with their token ids.",
            "logits.softmax(dim=-1), then .topk(k, dim=-1), which returns the values and the indices, sorted.",
            "top = logits.softmax(dim=-1).topk(k, dim=-1); return top.values, top.indices",
        ),
    ),
    Question(
        id="07.Q1",
        function="first_loss",
        answer=lambda: F.cross_entropy(torch.zeros(1, 30522), torch.tensor([0])).item(),
        hints=(
            "A model that knows nothing gives every one of the 30522 tokens the same probability; the loss is "
            "-log of the right token's probability.",
        ),  # fmt: skip
        explanation="-log(1/30522) = ln 30522 ≈ 10.33: a fresh model's MLM loss should start near it. A start far "
        "above means overconfident random logits (hence small initial weights); the loss falling below it is "
        "the model learning, first the unigram frequencies.",
    ),
    Question(
        id="07.Q2",
        function="multiplier_at_55",
        answer=lambda: linear_warmup_decay(10)(55, 100),
        hints=("After the 10 warmup steps the multiplier falls linearly from 1 (step 10) to 0 (step 100).",),
        explanation="(100 − 55) / (100 − 10) = 0.5: halfway through the decay, the learning rate is half its peak.",
    ),
]
