"""Exercises and questions of chapter 09, real BERT weights and attention views (solutions/09_real_bert.ipynb).

The cases run the real all-MiniLM-L6-v2 weights (``minibert.hf.load_minilm``), loaded once per kernel.
"""

from __future__ import annotations

import functools

import torch

from ...hf import load_minilm, minilm_path
from ...text import BertTokenizer
from ...viz import AttentionData, attention_views, encode_for_view, head_patterns, model_attentions
from ..spec import Case, Exercise, Question

SENTENCES = [
    "The cat sat on the mat.",
    "Anarchism is a political philosophy that rejects hierarchy.",
    "The river bank was muddy after the rain, and the boat stayed tied to a willow.",
]
PAIRS = [("The cat sat on the mat.", "It was tired, so it slept."), ("Where is the bank?", "It is by the river.")]


@functools.lru_cache(maxsize=1)
def minilm():
    """(model, tokenizer): all-MiniLM-L6-v2 as a minibert Encoder, in eval mode, and its tokenizer."""
    return load_minilm().eval(), BertTokenizer.from_pretrained(minilm_path())


def minilm_attentions(text: str, pair: str | None = None) -> tuple[torch.Tensor, list[str]]:
    """MiniLM's attention probabilities (L, H, T, T) on one text (or pair), and its tokens (a fresh copy)."""
    attn, tokens = _attentions(text, pair)
    return attn.clone(), list(tokens)


@functools.lru_cache(maxsize=16)
def _attentions(text: str, pair: str | None) -> tuple[torch.Tensor, tuple[str, ...]]:
    model, tok = minilm()
    batch = encode_for_view(tok, text, pair)
    attn = torch.cat(model_attentions(model, batch))  # (L, H, T, T): one (1, H, T, T) per layer
    return attn, tuple(tok.convert_ids_to_tokens(batch["input_ids"][0].tolist()))


def _entropy(attentions: torch.Tensor) -> torch.Tensor:
    return torch.special.entr(attentions).sum(-1).mean(-1)  # entr(p) = -p log p, and 0 at p = 0


def _entropy_cases() -> list:
    real = [Case((minilm_attentions(s)[0],), "MiniLM") for s in SENTENCES[:2]]
    one_hot = torch.eye(5).expand(2, 3, 5, 5).clone()
    uniform = torch.full((1, 2, 8, 8), 1 / 8)
    return real + [Case((one_hot,), "one-hot rows: 0 log 0 counts as 0"), Case((uniform,), "uniform rows")]


def _previous_head(attentions: torch.Tensor) -> tuple[int, int]:
    scores = head_patterns(attentions, [str(i) for i in range(attentions.size(-1))])["previous"]  # (L, H)
    layer, head = divmod(int(scores.argmax()), scores.size(1))
    return layer, head


def _planted() -> torch.Tensor:
    g = torch.Generator().manual_seed(9)
    attn = torch.randn(3, 4, 10, 10, generator=g).softmax(-1)
    attn[1, 2] = torch.eye(10).roll(-1, dims=1).roll(1, dims=0)  # layer 1, head 2: each token looks left
    attn[1, 2, 0] = torch.eye(10)[0]
    attn[0, 3] = torch.eye(10).roll(1, dims=1)  # layer 0, head 3: the next token (a decoy)
    return attn


def _pair_view_data(data: AttentionData) -> dict:
    if not isinstance(data, AttentionData):
        raise TypeError(f"it is a {type(data).__name__}; return the AttentionData that minibert.viz.prepare makes")
    return {"tokens": data.tokens, "sentence_b_start": data.sentence_b_start, "attentions": data.attentions}


def _resting_token() -> str:
    """Where MiniLM's middle layers (1 to 4) park attention: "a" [CLS], "b" [SEP] or "c" the full stop."""
    attn, tokens = minilm_attentions(*PAIRS[0])
    found = head_patterns(attn, tokens)
    stops = torch.tensor([t == "." for t in tokens])
    shares = {"a": found["[CLS]"], "b": found["[SEP]"], "c": attn[..., stops].sum(-1).mean(-1)}
    return max(shares, key=lambda k: float(shares[k][1:5].mean()))


ITEMS = [
    Exercise(
        id="09.1",
        function="attention_entropy",
        cases=_entropy_cases,
        reference=_entropy,
        args=("attentions",),
        dims=("layer", "head"),
        atol=1e-5,
        hints=(
            "Entropy measures how spread a probability row is: 0 when a query looks at one key, log T when it "
            "looks at all T equally. Average it over the queries, for each layer and head.",
            "Per row: -sum over the keys of p log p, in nats (natural log). A probability of exactly 0 contributes "
            "0, but 0 * log 0 is nan in floating point: handle it (torch.where, or torch.special.entr).",
            "torch.special.entr(attentions).sum(-1).mean(-1), or -(p * torch.where(p > 0, p.log(), 0)).sum(-1)"
            ".mean(-1)",
        ),
    ),
    Exercise(
        id="09.2",
        function="previous_token_head",
        cases=lambda: (
            [Case((minilm_attentions(s)[0],), "MiniLM") for s in SENTENCES]
            + [Case((_planted(),), "random heads, one planted")]
        ),
        reference=_previous_head,
        args=("attentions",),
        returns=("layer", "head"),
        hints=(
            "For each head, measure how much attention a token gives to the token just before it, on average "
            "over the tokens that have one; the previous-token head is the one where that is largest.",
            "attentions[..., i, i - 1] for i = 1..T-1: index with idx = torch.arange(1, T) as "
            "attentions[..., idx, idx - 1], shape (L, H, T - 1); average over the last dimension; take the argmax "
            "of the (L, H) table and turn it into (layer, head) with divmod.",
            "score = attentions[..., idx, idx - 1].mean(-1); layer, head = divmod(int(score.argmax()), "
            "score.size(1)); return layer, head",
        ),
    ),
    Exercise(
        id="09.3",
        function="pair_view",
        cases=lambda: [Case((*minilm(), a, b), "MiniLM") for a, b in PAIRS],
        reference=lambda model, tok, text, pair: attention_views(model, tok, text, pair).data,
        view=_pair_view_data,
        args=("model", "tokenizer", "text", "pair"),
        hints=(
            "The head view of a pair needs the tokens the model saw, where segment B starts, and every layer's "
            "attention; minibert.viz has a function for each step, and prepare puts them together.",
            "encode_for_view(tokenizer, text, pair) is a batch of one; tokenizer.convert_ids_to_tokens(ids) the "
            "tokens; B starts at the first position whose token_type_ids is 1; model_attentions(model, batch) the "
            "probabilities.",
            "b_start = int((batch['token_type_ids'][0] == 1).nonzero()[0]); return prepare(model_attentions(model, "
            "batch), tokens, b_start)",
        ),
    ),
    Question(
        id="09.Q1",
        function="largest_entropy",
        answer=lambda: float(_entropy(torch.full((1, 1, 16, 16), 1 / 16))),
        hints=("The entropy of a row is largest when every one of the 16 keys gets the same probability.",),
        explanation="Uniform rows give -16 × (1/16) log(1/16) = log 16 ≈ 2.77 nats. A head near that bound looks "
        "everywhere (a bag of words); a head near 0 looks at one token (a pointer, such as the previous-token "
        "head).",
    ),
    Question(
        id="09.Q2",
        function="resting_token",
        answer=_resting_token,
        choices={"a": "[CLS]", "b": "[SEP]", "c": "the full stop '.'"},
        hints=(
            "Look at the model view, or at head_patterns: which special token collects a large share of "
            "attention in many heads of the middle layers?",
        ),  # fmt: skip
        explanation="MiniLM's heads in layers 1 to 4 park their attention on [CLS] when they have nothing to do "
        "(BERT-base uses [SEP]): a token whose value vector is small, so that looking at it changes little.",
    ),
]
