"""EuroBERT (chapter 11): transformers' EuroBertModel and EuroBertForMaskedLM.

Its names are Llama's (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``gate_proj``, ``up_proj``, ``down_proj``):
minibert fuses query, key and value into ``Wqkv`` and gate and up into ``Wi`` on the way in, and splits them out.
"""

from __future__ import annotations

from ..config import EUROBERT, EncoderConfig
from .naming import Format, fields_from_hf, fields_to_hf, pad_from_hf, plain_rope

FIELDS = (
    ("rms_norm_eps", "norm_eps"),
    ("attention_bias", "attention_bias"),
    ("mlp_bias", "mlp_bias"),
    ("attention_dropout", "attention_dropout"),
    ("tie_word_embeddings", "tie_word_embeddings"),
)  # (transformers' config key, minibert's field) beyond the sizes


def eurobert_config_from_hf(d: dict) -> EncoderConfig:
    if d.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act {d.get('hidden_act')!r} in a EuroBERT config (expected 'silu')")
    heads = d["num_attention_heads"]
    if d.get("head_dim") not in (None, d["hidden_size"] // heads):
        raise ValueError(f"head_dim {d['head_dim']} != hidden_size / num_attention_heads: not supported")
    rope = plain_rope(d.get("rope_parameters") or {"rope_theta": d.get("rope_theta", 250_000.0)})
    return EUROBERT.config(
        **fields_from_hf(d, FIELDS),
        num_kv_heads=d.get("num_key_value_heads") or heads,
        rope_theta=rope.get("rope_theta", 250_000.0),
        decoder_bias=d.get("mlp_bias", False),  # transformers gives lm_head the MLP's bias switch
        pad_token_id=pad_from_hf(d),
    )


def eurobert_config_to_hf(c: EncoderConfig) -> dict:
    return {
        **fields_to_hf(c, EUROBERT, "EuroBertForMaskedLM", FIELDS),
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "pad_token_id": c.pad_token_id,
    }


_LAYER = "model.layers.{i}"
RENAMES = (  # (transformers, minibert); {i} is a layer index
    ("model.embed_tokens", "encoder.embeddings.tok_embeddings"),
    (f"{_LAYER}.input_layernorm", "encoder.layers.{i}.attn_norm"),
    (f"{_LAYER}.self_attn.o_proj", "encoder.layers.{i}.attn.Wo"),
    (f"{_LAYER}.post_attention_layernorm", "encoder.layers.{i}.mlp_norm"),
    (f"{_LAYER}.mlp.down_proj", "encoder.layers.{i}.mlp.Wo"),
    ("model.norm", "encoder.final_norm"),
    ("lm_head", "mlm_head.decoder"),
)
_ATTN, _MLP = f"{_LAYER}.self_attn", f"{_LAYER}.mlp"
FUSED = (  # minibert's matrix, the transformers matrices whose rows it stacks, in order
    ("encoder.layers.{i}.attn.Wqkv", (f"{_ATTN}.q_proj", f"{_ATTN}.k_proj", f"{_ATTN}.v_proj")),
    ("encoder.layers.{i}.mlp.Wi", (f"{_MLP}.gate_proj", f"{_MLP}.up_proj")),  # SwiGLU: silu(gate) * up
)

FORMAT = Format(
    EUROBERT, eurobert_config_from_hf, eurobert_config_to_hf, RENAMES, FUSED, base="model", ignored=("inv_freq",)
)
