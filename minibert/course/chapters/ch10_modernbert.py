"""Exercises and questions of chapter 10, ModernBERT (solutions/10_modernbert.ipynb)."""

from __future__ import annotations

import torch

from ...config import EncoderConfig
from ...encoder import MLP, RotaryEmbedding, apply_rotary, sliding_window_mask, unpad_batch
from ...pretrain import wsd_factor
from ..spec import Case, Exercise, Question, seeded_tensors


def _rotary_reference(x, positions, base=10000.0):
    cos, sin = RotaryEmbedding(x.size(-1), base)(positions, x.dtype)  # (1, 1, T, D)
    return apply_rotary(x, cos, sin)


def _rotary_cases() -> list:
    (x,) = seeded_tensors((2, 3, 7, 8), seed=1)
    return [
        Case((x, torch.arange(7))),
        Case((x, torch.arange(7) + 100, 160000.0), "positions from 100, base 160000"),
        Case((x, torch.tensor([0, 5, 1, 9, 2, 2, 30])), "positions out of order"),
    ]


def _geglu_reference(x, Wi, Wo):
    C, I = Wo.shape
    mlp = MLP(EncoderConfig(hidden_size=C, num_heads=1, intermediate_size=I, activation="geglu", mlp_bias=False))
    mlp.Wi.weight.copy_(Wi)
    mlp.Wo.weight.copy_(Wo)
    return mlp(x)


def _unpad_reference(attention_mask):
    _, unpadded = unpad_batch(torch.zeros(*attention_mask.shape, 1), attention_mask, None, None)
    return unpadded.index, unpadded.state.cu_seqlens


def _unpad_cases() -> list:
    right = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    holes = (torch.rand(4, 9, generator=torch.Generator().manual_seed(0)) > 0.4).long()
    holes[:, 0] = 1
    return [Case((right,), "padding on the right"), Case((left,), "padding on the left"), Case((holes,), "holes")]


ITEMS = [
    Exercise(
        id="10.1",
        function="window_mask",
        cases=lambda: [(8, 4), (12, 6), (20, 128), (300, 128)],
        reference=sliding_window_mask,
        args=("seq_len", "window"),
        dims=("query", "key"),
        hints=(
            "Query i may see key j when they are at most half a window apart, on either side. A mask is boolean.",
            "pos = torch.arange(seq_len); pos[None, :] - pos[:, None] is the (T, T) table of j - i; compare its "
            "absolute value with window // 2.",
            "(pos[None, :] - pos[:, None]).abs() <= window // 2",
        ),
    ),
    Exercise(
        id="10.2",
        function="rotary",
        cases=_rotary_cases,
        reference=_rotary_reference,
        args=("x", "positions", "base"),
        dims=("batch", "head", "position", "feature"),
        atol=1e-5,
        hints=(
            "Each pair of features (j, j + D/2) is a point in a plane; rotate it by an angle that grows with the "
            "position, slower for larger j.",
            "theta = base ** (-torch.arange(0, D, 2) / D) has D/2 frequencies (float32); angles = positions[:, None] "
            "* theta is (T, D/2); x1 = x[..., :D//2] and x2 = x[..., D//2:] are the pairs' two coordinates.",
            "cos, sin = angles.cos(), angles.sin(); return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), "
            "dim=-1)",
        ),
    ),
    Exercise(
        id="10.3",
        function="geglu_ffn",
        cases=lambda: [tuple(seeded_tensors((2, 5, 16), (2 * I, 16), (16, I), seed=s)) for s, I in enumerate((24, 40))],
        reference=_geglu_reference,
        args=("x", "Wi", "Wo"),
        dims=("batch", "position", "feature"),
        hints=(
            "One matrix computes two things at once: a gate, passed through GELU, and a value; their product goes "
            "through the output matrix.",
            "x @ Wi.T is (B, T, 2I): .chunk(2, dim=-1) gives the gate (the FIRST half) and the up projection. "
            "Multiply F.gelu(gate) by up, then @ Wo.T. There are no biases.",
            "gate, up = (x @ Wi.T).chunk(2, dim=-1); return (F.gelu(gate) * up) @ Wo.T",
        ),
    ),
    Exercise(
        id="10.4",
        function="unpad_positions",
        cases=_unpad_cases,
        reference=_unpad_reference,
        args=("attention_mask",),
        returns=("index", "cu_seqlens"),
        hints=(
            "The real tokens of the flattened batch, in order, and where each sequence starts and ends in that "
            "stream: the running total of the sequence lengths.",
            "attention_mask.flatten().nonzero() lists the positions of the 1s (shape (N, 1): squeeze it); "
            "attention_mask.sum(1) are the lengths, and cumsum(0) the running total; start the list with 0.",
            "index = attention_mask.flatten().nonzero().squeeze(1); cu_seqlens = [0] + "
            "attention_mask.sum(1).cumsum(0).tolist()",
        ),
    ),
    Exercise(
        id="10.5",
        function="wsd",
        cases=lambda: [(100, 10, 20), (50, 5, 10), (30, 0, 30)],
        reference=wsd_factor,
        call=lambda fn, total, w, d: [fn(s, total, w, d) for s in range(total)],
        args=("total_steps", "warmup_steps", "decay_steps"),
        index="step",
        hints=(
            "A trapezoid: up during the warmup, flat at 1, down to 0 over the last decay_steps steps.",
            "Three cases: step < warmup_steps gives (step + 1) / (warmup_steps + 1); step < total_steps - "
            "decay_steps gives 1; otherwise (total_steps - step) / decay_steps.",
            "if step < warmup_steps: return (step + 1) / (warmup_steps + 1); if step < total_steps - decay_steps: "
            "return 1.0; return (total_steps - step) / decay_steps",
        ),
    ),
    Question(
        id="10.Q1",
        function="keys_in_a_window",
        answer=lambda: int(sliding_window_mask(300, 128)[150].sum()),
        rel_tol=0.0,
        abs_tol=0.5,
        hints=("A token in the middle sees 64 tokens on each side, and itself.",),
        explanation="64 + 1 + 64 = 129 keys, however long the text: a local layer costs O(T · 129) instead of "
        "O(T²). ModernBERT makes two layers in three local and keeps every third global.",
    ),
    Question(
        id="10.Q2",
        function="what_rope_scores_depend_on",
        answer=lambda: "b",
        choices={
            "a": "the positions m and n of the query and the key",
            "b": "only the offset n - m between them",
            "c": "only the sum m + n",
        },
        hints=("Rotating q by mθ and k by nθ: what is the angle between the rotated vectors?",),
        explanation="A dot product of two rotated vectors depends on the difference of their angles, (n − m)θ: "
        "rotary embeddings give attention relative positions for free, which the cell after exercise 10.2 checks "
        "by shifting every position by 50.",
    ),
]
