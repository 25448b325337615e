"""Exercises and questions of chapter 04, attention (solutions/04_attention.ipynb)."""

from __future__ import annotations

import math

import torch

from ...config import EncoderConfig
from ...encoder import MultiHeadAttention, attention_with_probs
from ..spec import Case, Exercise, Question, seeded_tensors

ATTENTION_DIMS = {
    "output": ("batch", "head", "query", "feature"),
    "probabilities": ("batch", "head", "query", "key"),
}


def _padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    return attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T)


def _qkv_cases() -> list:
    cases = [Case(tuple(seeded_tensors(*[(2, 3, 5, 4)] * 3, seed=s))) for s in range(2)]
    return cases + [Case(tuple(seeded_tensors(*[(1, 2, 6, 16)] * 3, seed=2)), "D = 16")]


MASKS = [
    Case((torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]),)),
    Case((torch.tensor([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0]]),)),
    Case((torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]]),), "a row with no real token"),
]


def _masked_cases() -> list:
    shapes = [(2, 3, 5, 4)] * 3
    return [Case((*seeded_tensors(*shapes, seed=s), m.args[0]), m.label) for s, m in enumerate(MASKS)]


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.reshape(B, T, num_heads, C // num_heads).permute(0, 2, 1, 3)


def _mha_cases() -> list:
    torch.manual_seed(5)
    cases = []
    for C, H in ((24, 3), (32, 4)):
        module = MultiHeadAttention(EncoderConfig(hidden_size=C, num_heads=H, num_layers=1, intermediate_size=C))
        x = seeded_tensors((2, 6, C), seed=C)[0]
        mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
        cases.append(Case((x, module.Wqkv, module.Wo, H, mask)))
    return cases


def _mha_reference(x, Wqkv, Wo, num_heads, attention_mask):
    config = EncoderConfig(hidden_size=x.size(-1), num_heads=num_heads, num_layers=1, intermediate_size=x.size(-1))
    module = MultiHeadAttention(config).eval()
    module.Wqkv, module.Wo = Wqkv, Wo
    return module(x, _padding_mask(attention_mask), return_probs=True)[0]


def _score_memory_mb() -> float:
    scores = torch.empty(1, 12, 512, 512, device="meta")  # one layer's (B, H, T, T) probabilities, float32
    return scores.numel() * scores.element_size() / 1e6


ITEMS = [
    Exercise(
        id="04.1",
        function="scaled_dot_product_attention",
        cases=_qkv_cases,
        reference=attention_with_probs,
        args=("q", "k", "v"),
        returns=("output", "probabilities"),
        dims=ATTENTION_DIMS,
        hints=(
            "Every query scores every key with a dot product; the scores are scaled, turned into probabilities over "
            "the keys (each row sums to 1), and the probabilities weight the values.",
            "q @ k.transpose(-2, -1) is the (B, H, T, T) score matrix. Divide it by the square root of D, the size "
            "of the last dimension of q, then take the softmax over the last dimension (the keys).",
            "scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)); probs = scores.softmax(dim=-1); then return "
            "probs @ v and probs.",
        ),
    ),
    Exercise(
        id="04.2",
        function="padding_mask",
        cases=lambda: MASKS[:2],
        reference=_padding_mask,
        args=("attention_mask",),
        dims=("batch", "head", "query", "key"),
        hints=(
            "The mask says which keys are real tokens; it must be boolean and broadcast against scores of shape "
            "(B, H, T, T), so the key dimension is the last one and the others have size 1.",
            "attention_mask.bool() turns 1/0 into True/False; then insert two dimensions of size 1 between the batch "
            "and the keys.",
            "attention_mask.bool()[:, None, None, :]",
        ),
    ),
    Exercise(
        id="04.3",
        function="masked_attention",
        cases=_masked_cases,
        reference=lambda q, k, v, m: attention_with_probs(q, k, v, _padding_mask(m)),
        args=("q", "k", "v", "attention_mask"),
        returns=("output", "probabilities"),
        dims=ATTENTION_DIMS,
        hints=(
            "Padded keys must get zero probability: give their scores a value so low that the softmax ignores them, "
            "before the softmax, not after.",
            "Use the (B, 1, 1, T) mask of exercise 04.2 with scores.masked_fill(~mask, value). The value is the most "
            "negative float, not minus infinity: a row with no real key would be all -inf and give NaN.",
            "scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)); scores = scores.masked_fill("
            "~padding_mask(attention_mask), torch.finfo(scores.dtype).min); then softmax and @ v as in 04.1.",
        ),
    ),
    Exercise(
        id="04.4",
        function="split_heads",
        cases=lambda: [(seeded_tensors((2, 5, 12), seed=1)[0], 3), (seeded_tensors((1, 7, 16), seed=2)[0], 4)],
        reference=_split_heads,
        args=("x", "num_heads"),
        dims=("batch", "head", "position", "feature"),
        hints=(
            "Each head owns a contiguous slice of D = C / H features of every token; the heads then become a batch "
            "dimension in front of the positions.",
            "First view the last dimension as (H, D), giving (B, T, H, D); then swap the position and head dimensions.",
            "x.view(B, T, num_heads, C // num_heads).transpose(1, 2)",
        ),
    ),
    Exercise(
        id="04.5",
        function="merge_heads",
        cases=lambda: [tuple(seeded_tensors((2, 3, 5, 4), seed=3)), tuple(seeded_tensors((1, 4, 7, 4), seed=4))],
        reference=lambda x: x.permute(0, 2, 1, 3).flatten(2),
        args=("x",),
        dims=("batch", "position", "feature"),
        hints=(
            "Undo exercise 04.4: the heads go back behind the positions, and their features side by side.",
            "Swap the head and position dimensions back, to (B, T, H, D), then join the last two into H * D. "
            "After a transpose the tensor is not contiguous: view refuses, reshape works.",
            "x.transpose(1, 2).reshape(B, T, H * D)",
        ),
    ),
    Exercise(
        id="04.6",
        function="causal_mask",
        cases=lambda: [(1,), (4,), (9,)],
        reference=lambda T: torch.ones(T, T, dtype=torch.bool).tril(),
        args=("T",),
        dims=("query", "key"),
        hints=(
            "Row i of the mask is query i; it may see keys 0 to i, so the mask is True on and below the diagonal "
            "and False above. A mask is boolean.",
            "torch.tril keeps the lower triangle of a matrix; start from a (T, T) tensor of True (dtype=torch.bool).",
            "torch.tril(torch.ones(T, T, dtype=torch.bool))",
        ),
    ),
    Exercise(
        id="04.7",
        function="multi_head_attention",
        cases=_mha_cases,
        reference=_mha_reference,
        args=("x", "Wqkv", "Wo", "num_heads", "attention_mask"),
        dims=("batch", "position", "feature"),
        hints=(
            "Project once, split into heads, attend with the padding mask, merge the heads, project out. Your "
            "functions from exercises 04.2 to 04.5 do most of it.",
            "Wqkv(x) is (B, T, 3C): .split(C, dim=-1) gives q, k and v. Split each into heads; masked attention "
            "returns (output, probabilities): keep the output; merge it and apply Wo.",
            "q, k, v = Wqkv(x).split(C, dim=-1); q, k, v = (split_heads(t, num_heads) for t in (q, k, v)); "
            "y, _ = masked_attention(q, k, v, attention_mask); return Wo(merge_heads(y))",
        ),
    ),
    Question(
        id="04.Q1",
        function="score_spread",
        answer=lambda: math.sqrt(64),
        rel_tol=0.05,
        hints=(
            "q·k is a sum of d products q_i k_i; each product of two independent unit-variance numbers has mean 0 "
            "and variance 1, and variances of independent terms add up.",
        ),
        explanation="The variance of q·k is d = 64, so its standard deviation is √64 = 8: without the scale, scores "
        "of size 8 push the softmax to almost one-hot rows whose gradients vanish. Dividing by √d brings them back "
        "to unit size, whatever the head's width.",
    ),
    Question(
        id="04.Q2",
        function="score_memory",
        answer=_score_memory_mb,
        rel_tol=0.02,
        hints=(
            "The probabilities of one layer form a (batch, heads, T, T) tensor: count its numbers, then the bytes "
            "of a float32.",
        ),
        explanation="1 × 12 × 512 × 512 numbers of 4 bytes are 12.6 MB for one layer and one sequence. It grows "
        "as T²: at 8192 tokens it is 3.2 GB, which is why long-context encoders never store it (fused kernels, "
        "local attention).",
    ),
]
