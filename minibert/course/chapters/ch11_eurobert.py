"""Exercises and questions of chapter 11, EuroBERT (solutions/11_eurobert.ipynb)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ...config import preset
from ...encoder import RMSNorm
from ...text import multilingual as ml
from ..spec import Case, Exercise, Question, seeded_tensors

KV_GROUPS = [(2, 3), (1, 4), (3, 1)]  # (key/value heads, query heads per key/value head)
TEXTS = ["the quick brown fox", "jumps over the lazy dog", "Съединение правит сила", "ein Beispiel"]


def _rms_cases() -> list:
    cases = []
    for s in range(3):
        x, w = seeded_tensors((2, 5, 16), (16,), seed=s)
        cases.append(Case((x * 3, w, 1e-5 * (s + 1))))
    cases.append(Case((torch.full((1, 2, 8), 1e-3), torch.ones(8), 1e-5), "tiny values: eps matters"))
    return cases


def _rms_reference(x, w, eps):
    norm = RMSNorm(x.size(-1), eps)
    norm.weight.copy_(w)
    return norm(x)


def _gqa_cases() -> list:
    cases = []
    for s, (H, K) in enumerate([(6, 2), (4, 1), (4, 4)]):
        q, k, v = seeded_tensors((2, H, 7, 8), (2, K, 7, 8), (2, K, 7, 8), seed=s)
        mask = torch.ones(2, 1, 1, 7, dtype=torch.bool)
        mask[1, ..., 4:] = False  # the second sequence has 3 padding tokens
        cases.append(Case((q, k, v, mask if s else None), f"{H} query heads, {K} key/value heads"))
    return cases


def _without_sdpa(fn, args) -> str | None:
    used = []
    original = F.scaled_dot_product_attention

    def spy(*a, **k):
        used.append(1)
        return original(*a, **k)

    F.scaled_dot_product_attention = spy
    try:
        fn(*args)
    finally:
        F.scaled_dot_product_attention = original
    if used:
        return ("it calls F.scaled_dot_product_attention; write the attention out: repeat the key/value heads, then "
                "softmax(q k^T / sqrt(D)) v.")  # fmt: skip
    return None


@functools.lru_cache(maxsize=1)
def _bpe():
    return ml.train_bytelevel_bpe(TEXTS * 20, 300)


def _fertility_cases() -> list:
    tokenizers = [
        (lambda t: _bpe().encode(t, add_special_tokens=False).ids, "byte-level BPE"),
        (lambda t: list(t.replace(" ", "")), "one token per character"),
        (str.split, "one token per word"),
    ]
    return [Case((tok, TEXTS[i:]), label) for i, (tok, label) in enumerate(tokenizers)]


def _kv_shrink() -> float:
    config = preset("eurobert-610m")
    return config.num_heads / config.kv_heads


ITEMS = [
    Exercise(
        id="11.1",
        function="rms_norm",
        cases=_rms_cases,
        reference=_rms_reference,
        args=("x", "weight", "eps"),
        atol=1e-5,
        hints=(
            "LayerNorm without its centring: each vector is divided by its root mean square, the square root of "
            "the mean of its squared features, then multiplied by the gain.",
            "Square, average over the last dimension with keepdim=True, add eps inside the square root (it "
            "matters for tiny vectors), divide; multiply by weight. No mean is subtracted, no bias added.",
            "x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight",
        ),
    ),
    Exercise(
        id="11.2",
        function="repeat_kv",
        cases=lambda: [(seeded_tensors((2, k, 4, 3), seed=s)[0], g) for s, (k, g) in enumerate(KV_GROUPS)],
        reference=lambda x, groups: x.repeat_interleave(groups, dim=1),
        args=("x", "groups"),
        dims=("batch", "head", "position", "feature"),
        hints=(
            "Each key/value head serves a group of consecutive query heads: it must appear groups times in a row "
            "(0, 0, 1, 1, ...), not the whole list repeated (0, 1, 0, 1, ...).",
            "Insert a new axis after the heads, (B, K, 1, T, D); expand it to groups without copying; then merge "
            "the two head axes with reshape.",
            "B, K, T, D = x.shape; return x[:, :, None].expand(B, K, groups, T, D).reshape(B, K * groups, T, D)",
        ),
    ),
    Exercise(
        id="11.3",
        function="gqa_attention",
        cases=_gqa_cases,
        reference=lambda q, k, v, mask: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True),
        method=_without_sdpa,
        args=("q", "k", "v", "mask"),
        dims=("batch", "head", "query", "feature"),
        atol=1e-5,
        hints=(
            "Grouped-query attention is ordinary attention once every query head has its key/value head: repeat "
            "the K key/value heads H / K times each, then attend as in chapter 04.",
            "groups = q.size(1) // k.size(1); k and v repeated along dim 1 (exercise 11.2 or repeat_interleave); "
            "scores q @ k^T / sqrt(D); where mask is False, fill -inf before the softmax.",
            "scores = q @ k.transpose(-2, -1) / q.size(-1) ** 0.5; if mask is not None: scores = "
            "scores.masked_fill(~mask, float('-inf')); return scores.softmax(dim=-1) @ v",
        ),
    ),
    Exercise(
        id="11.4",
        function="fertility",
        cases=_fertility_cases,
        reference=ml.fertility,
        args=("tokenize", "texts"),
        hints=(
            "Tokens per word over the whole corpus: count all the tokens and all the words, then divide once, so "
            "that long texts weigh more than short ones.",
            "Words are text.split(); tokens are len(tokenize(text)). Sum each over the texts; raise ValueError when "
            "there are no words.",
            "words = sum(len(t.split()) for t in texts); if words == 0: raise ValueError(...); return "
            "sum(len(tokenize(t)) for t in texts) / words",
        ),
    ),
    Question(
        id="11.Q1",
        function="kv_projection_shrink",
        answer=_kv_shrink,
        hints=("Each key/value head is shared by a group of query heads: how many query heads per group?",),
        explanation="18 query heads share 6 key/value heads, 3 each: the key and value projections (and, in a "
        "decoder, the cache of keys and values) are 3 times smaller, for little loss in quality.",
    ),
    Question(
        id="11.Q2",
        function="characters_fertility",
        answer=lambda: ml.fertility(lambda t: list(t.replace(" ", "")), ["the quick brown fox"]),
        hints=("Count the letters (the tokens) and the words of 'the quick brown fox'.",),
        explanation="16 letters for 4 words: fertility 4.0. A character-level tokenizer makes sequences several "
        "times longer than a word-level one, and attention's cost grows with their square; subword vocabularies "
        "sit in between, lower for the languages they were trained on.",
    ),
]
