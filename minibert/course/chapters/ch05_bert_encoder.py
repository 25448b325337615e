"""Exercises and questions of chapter 05, the BERT encoder (solutions/05_bert_encoder.ipynb)."""

from __future__ import annotations

import functools

import torch

from ...config import EncoderConfig, preset
from ...encoder import Embeddings, Encoder, EncoderBlock, padding_mask
from ..spec import Case, Exercise, Question

TINY = EncoderConfig(
    vocab_size=50, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=32
)
HIDDEN = ("batch", "position", "feature")
PRESETS = ("bert-tiny", "bert-mini", "minilm-l6", "bert-base", "bert-large")


def seeded_ids(B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, segment ids (A then B) and an attention mask; the last sequence ends with two [PAD]."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, TINY.vocab_size, (B, T), generator=g)
    segments = torch.zeros(B, T, dtype=torch.long)
    segments[:, T // 2 :] = 1
    mask = torch.ones(B, T, dtype=torch.long)
    mask[-1, T - 2 :] = 0
    ids[mask == 0] = 0
    segments[mask == 0] = 0
    return ids, segments, mask


def _embed_cases() -> list:
    torch.manual_seed(1)
    emb = Embeddings(TINY).eval()
    return [(*seeded_ids(2, 7, seed=s)[:2], emb) for s in range(3)]


def _block_cases() -> list:
    torch.manual_seed(2)
    block = EncoderBlock(TINY).eval()
    cases = []
    for s in range(3):
        x = torch.randn(2, 7, TINY.hidden_size, generator=torch.Generator().manual_seed(s))
        cases.append(Case((x, block, padding_mask(seeded_ids(2, 7, seed=s)[2])), "the last row ends with padding"))
    return cases


def _stack_cases() -> list:
    torch.manual_seed(3)
    model = Encoder(TINY).eval()
    return [Case((*seeded_ids(3, 9, seed=s), model), "the last row ends with padding") for s in range(2)]


def _real_tokens(fn, ids, segments, mask, model):
    """The hidden states of the real tokens only: what padded positions compute is never read."""
    return fn(ids, segments, mask, model) * mask.bool()[..., None]


@functools.cache
def _count(module_class, config: EncoderConfig) -> int:
    with torch.device("meta"):  # shapes only, no memory
        return sum(p.numel() for p in module_class(config).parameters())


ITEMS = [
    Exercise(
        id="05.1",
        function="embed",
        cases=_embed_cases,
        reference=lambda ids, seg, emb: emb(ids, seg),
        args=("input_ids", "token_type_ids", "emb"),
        dims=HIDDEN,
        hints=(
            "Each token's vector is the sum of three looked-up vectors, one for what it is, one for where it is, "
            "one for its segment, then normalised.",
            "Call each nn.Embedding with ids: emb.tok_embeddings(input_ids), emb.pos_embeddings(torch.arange(T)) "
            "(one row per position, broadcast over the batch), emb.type_embeddings(token_type_ids); then emb.norm.",
            "x = emb.tok_embeddings(input_ids) + emb.pos_embeddings(torch.arange(T)) + "
            "emb.type_embeddings(token_type_ids); return emb.norm(x)",
        ),
    ),
    Exercise(
        id="05.2",
        function="encoder_block",
        cases=_block_cases,
        reference=lambda x, block, mask: block(x, mask)[0],
        args=("x", "block", "mask"),
        dims=HIDDEN,
        hints=(
            "Two sub-layers, attention then feed-forward; each one's output is added to its input (the residual) "
            "and the sum is normalised (post-LN, as in BERT).",
            "a, _ = block.attn(x, mask); h = block.attn_norm(x + a). The feed-forward network is Wo(GELU(Wi h)) "
            "with block.mlp.Wi and block.mlp.Wo; then block.mlp_norm(h + that).",
            "h = block.attn_norm(x + a); return block.mlp_norm(h + block.mlp.Wo(F.gelu(block.mlp.Wi(h))))",
        ),
    ),
    Exercise(
        id="05.3",
        function="encoder_forward",
        cases=_stack_cases,
        reference=lambda ids, seg, mask, model: model(ids, mask, seg).last_hidden_state,
        call=_real_tokens,
        args=("input_ids", "token_type_ids", "attention_mask", "model"),
        dims=HIDDEN,
        atol=1e-5,
        hints=(
            "Embed once, then let every block transform the hidden states in turn, all with the same mask.",
            "padding_mask(attention_mask) gives the (B, 1, 1, T) boolean mask; x = embed(...) with "
            "model.embeddings; then a loop over model.layers with your encoder_block.",
            "mask = padding_mask(attention_mask); x = embed(input_ids, token_type_ids, model.embeddings); for "
            "block in model.layers: x = encoder_block(x, block, mask); return x",
        ),
    ),
    Exercise(
        id="05.4",
        function="count_parameters",
        cases=lambda: [Case((preset(n),), n) for n in PRESETS],
        reference=lambda config: _count(Encoder, config),
        args=("config",),
        hints=(
            "Add up the pieces: three embedding tables and a LayerNorm; per block, four C × C projections, two "
            "feed-forward matrices and two LayerNorms; the pooler. Every linear layer has a bias.",
            "A linear layer from n to m holds n·m + m numbers; a LayerNorm over C features 2C; an embedding table "
            "of N rows N·C. The blocks are all the same: count one, multiply by L.",
            "embeddings (V + P + S)·C + 2C; block 4(C² + C) + (C·I + I) + (I·C + C) + 2·2C; pooler C² + C; "
            "total embeddings + L·block + pooler",
        ),
    ),
    Question(
        id="05.Q1",
        function="base_embedding_parameters",
        answer=lambda: _count(Embeddings, preset("bert-base")),
        rel_tol=0.005,
        hints=("bert-base: V = 30522 tokens, P = 512 positions, S = 2 segments, C = 768, and a LayerNorm.",),
        explanation="(30522 + 512 + 2) × 768 + 2 × 768 = 23.8M parameters, a fifth of BERT-base's 110M, almost "
        "all of it the token table: a vocabulary is expensive, which is why small BERTs keep it and shrink "
        "everything else.",
    ),
    Question(
        id="05.Q2",
        function="base_block_parameters",
        answer=lambda: _count(EncoderBlock, preset("bert-base")),
        rel_tol=0.005,
        hints=(
            "One block of bert-base: C = 768, I = 3072; attention 4(C² + C), feed-forward 2CI + I + C, two LayerNorms.",
        ),  # fmt: skip
        explanation="4 × (768² + 768) + 2 × 768 × 3072 + 3072 + 768 + 4 × 768 = 7.1M: two thirds of it in the "
        "feed-forward network. Twelve blocks make 85M of BERT-base's 110M.",
    ),
]
