"""ModernBERT (chapter 10): transformers' ModernBertModel and ModernBertForMaskedLM.

minibert's names are ModernBERT's, so its weights move by prefix only. Its config lists each layer's attention
(global or sliding window) and each kind's rotary base, where minibert has a period and two bases.
"""

from __future__ import annotations

from ..config import MODERNBERT, EncoderConfig
from .naming import Format, fields_from_hf, fields_to_hf, pad_from_hf, plain_rope

_ACTIVATIONS = {"gelu": "geglu", "silu": "swiglu"}  # hidden_activation -> minibert's gated activation
_HEAD_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "silu": "silu"}  # minibert's -> theirs
FIELDS = (
    ("norm_eps", "norm_eps"),
    ("norm_bias", "norm_bias"),
    ("attention_bias", "attention_bias"),
    ("mlp_bias", "mlp_bias"),
    ("classifier_bias", "head_bias"),
    ("tie_word_embeddings", "tie_word_embeddings"),
    ("decoder_bias", "decoder_bias"),
    ("attention_dropout", "attention_dropout"),
)  # (transformers' config key, minibert's field) beyond the sizes


def _global_every(d: dict) -> int:
    """Every how many layers attention is global; transformers 5 lists each layer's kind instead."""
    kinds = d.get("layer_types")
    if not kinds:
        return d.get("global_attn_every_n_layers", 3)
    every = next((i for i, k in enumerate(kinds) if i and k == "full_attention"), max(len(kinds), 2))
    expected = ["full_attention" if i % every == 0 else "sliding_attention" for i in range(len(kinds))]
    if kinds != expected:
        raise ValueError(f"layer_types {kinds} are not 'every n-th layer global, starting with the first'")
    return every


def modernbert_config_from_hf(d: dict) -> EncoderConfig:
    act = _ACTIVATIONS.get(d.get("hidden_activation", "gelu"))
    if act is None:
        raise ValueError(f"unsupported hidden_activation {d.get('hidden_activation')!r} in a ModernBERT config")
    head_act = d.get("classifier_activation", "gelu")
    head_act = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}.get(head_act, head_act)
    if head_act not in _HEAD_ACTIVATIONS:
        raise ValueError(f"unsupported classifier_activation {d.get('classifier_activation')!r}")
    every = _global_every(d)
    rope = d.get("rope_parameters") or {}
    full, sliding = plain_rope(rope.get("full_attention") or {}), plain_rope(rope.get("sliding_attention") or {})
    return MODERNBERT.config(
        **fields_from_hf(d, FIELDS),
        rope_theta=full.get("rope_theta", d.get("global_rope_theta", 160_000.0)),
        local_rope_theta=sliding.get("rope_theta", d.get("local_rope_theta", 10_000.0)),
        activation=act,
        global_attn_every_n_layers=every if d["num_hidden_layers"] > 1 else 1,
        local_attention=d.get("local_attention", 128),
        head_activation=head_act,
        pad_token_id=pad_from_hf(d),
        hidden_dropout=max(d.get("embedding_dropout", 0.0), d.get("mlp_dropout", 0.0)),
    )


def modernbert_config_to_hf(c: EncoderConfig) -> dict:
    return {
        **fields_to_hf(c, MODERNBERT, "ModernBertForMaskedLM", FIELDS),
        "hidden_activation": {"geglu": "gelu", "swiglu": "silu"}[c.activation],
        "layer_types": ["full_attention" if c.is_global(i) else "sliding_attention" for i in range(c.num_layers)],
        "global_attn_every_n_layers": max(c.global_attn_every_n_layers, 1),
        "local_attention": c.local_attention or 128,  # transformers needs a window even when no layer is local
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": c.rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": c.local_rope_theta or c.rope_theta},
        },
        "classifier_activation": _HEAD_ACTIVATIONS[c.head_activation or "gelu"],
        "pad_token_id": c.pad_token_id,
        "embedding_dropout": c.hidden_dropout,
        "mlp_dropout": c.hidden_dropout,
    }


RENAMES = (  # (transformers, minibert)
    ("model.embeddings", "encoder.embeddings"),
    ("model.layers", "encoder.layers"),
    ("model.final_norm", "encoder.final_norm"),
    ("head.dense", "mlm_head.dense"),
    ("head.norm", "mlm_head.norm"),
    ("decoder", "mlm_head.decoder"),
)

FORMAT = Format(
    MODERNBERT, modernbert_config_from_hf, modernbert_config_to_hf, RENAMES, base="model", ignored=("inv_freq",)
)
