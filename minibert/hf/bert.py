"""BERT (chapter 09): transformers' BertModel, BertForPreTraining, BertForMaskedLM and BertForSequenceClassification.

Transformers keeps BERT's original module names (``attention.self.query``, ``intermediate.dense``, ``LayerNorm``);
minibert names the same weights as the paper and the modern checkpoints do, and fuses query, key and value.
"""

from __future__ import annotations

from ..config import BERT, EncoderConfig
from .naming import Format, fields_from_hf, fields_to_hf

_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}  # hidden_act -> minibert's
FIELDS = (
    ("type_vocab_size", "type_vocab_size"),
    ("layer_norm_eps", "norm_eps"),
    ("hidden_dropout_prob", "hidden_dropout"),
    ("attention_probs_dropout_prob", "attention_dropout"),
)  # (transformers' config key, minibert's field) beyond the sizes


def bert_config_from_hf(d: dict) -> EncoderConfig:
    act = _ACTIVATIONS.get(d.get("hidden_act", "gelu"))
    if act is None:
        raise ValueError(f"unsupported hidden_act {d.get('hidden_act')!r} in a BERT config")
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError("only absolute (learned) position embeddings are supported for BERT checkpoints")
    return BERT.config(**fields_from_hf(d, FIELDS), activation=act, pad_token_id=d.get("pad_token_id", 0) or 0)


def bert_config_to_hf(c: EncoderConfig) -> dict:
    return {
        **fields_to_hf(c, BERT, "BertForPreTraining", FIELDS),
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_new"}[c.activation],
        "pad_token_id": c.pad_token_id,
        "position_embedding_type": "absolute",
        "tie_word_embeddings": True,
    }


RENAMES = (  # (transformers, minibert); {i} is a layer index
    ("bert.embeddings.word_embeddings", "encoder.embeddings.tok_embeddings"),
    ("bert.embeddings.position_embeddings", "encoder.embeddings.pos_embeddings"),
    ("bert.embeddings.token_type_embeddings", "encoder.embeddings.type_embeddings"),
    ("bert.embeddings.LayerNorm", "encoder.embeddings.norm"),
    ("bert.encoder.layer.{i}.attention.output.dense", "encoder.layers.{i}.attn.Wo"),
    ("bert.encoder.layer.{i}.attention.output.LayerNorm", "encoder.layers.{i}.attn_norm"),
    ("bert.encoder.layer.{i}.intermediate.dense", "encoder.layers.{i}.mlp.Wi"),
    ("bert.encoder.layer.{i}.output.dense", "encoder.layers.{i}.mlp.Wo"),
    ("bert.encoder.layer.{i}.output.LayerNorm", "encoder.layers.{i}.mlp_norm"),
    ("bert.pooler.dense", "encoder.pooler.dense"),
    ("cls.predictions.transform.dense", "mlm_head.dense"),
    ("cls.predictions.transform.LayerNorm", "mlm_head.norm"),
    ("cls.predictions.bias", "mlm_head.decoder.bias"),  # before the decoder: saving writes the bias here
    ("cls.predictions.decoder", "mlm_head.decoder"),  # tied to cls.predictions.bias and the word embeddings
    ("cls.seq_relationship", "nsp_head"),
    ("classifier", "classifier"),
)
_SELF = "bert.encoder.layer.{i}.attention.self"
FUSED = (("encoder.layers.{i}.attn.Wqkv", (f"{_SELF}.query", f"{_SELF}.key", f"{_SELF}.value")),)

FORMAT = Format(BERT, bert_config_from_hf, bert_config_to_hf, RENAMES, FUSED, base="bert", ignored=("position_ids",))
