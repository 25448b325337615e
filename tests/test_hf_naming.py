"""Each family's name table read both ways: minibert -> transformers -> minibert is the identity, and back."""

import pytest
import torch
from safetensors import safe_open
from transformers import BertForPreTraining, EuroBertForMaskedLM, ModernBertForMaskedLM

from minibert import EncoderForPreTraining, hf, preset
from minibert.config import PRESETS, family_of
from minibert.files import CheckpointError, load_weights
from minibert.hf.naming import fused_rows, translate

TRANSFORMERS = {"bert": BertForPreTraining, "modernbert": ModernBertForMaskedLM, "eurobert": EuroBertForMaskedLM}
TIED = "mlm_head.decoder.weight"  # the word embedding matrix again, when tied: transformers saves it once


def tiny(model_type: str):
    return preset(f"{model_type}-tiny", vocab_size=64, max_position_embeddings=32, pad_token_id=0)


def transformers_model(model_type: str, config):
    d = hf.FORMATS[model_type].config_to_hf(config)
    cls = TRANSFORMERS[model_type]
    return cls(cls.config_class(**{k: v for k, v in d.items() if k != "architectures"})).eval()


@pytest.mark.parametrize("model_type", sorted(TRANSFORMERS))
def test_minibert_to_transformers_to_minibert_is_the_identity(model_type):
    config = tiny(model_type)
    torch.manual_seed(0)
    sd = EncoderForPreTraining(config).state_dict()
    theirs = hf.state_dict_to_hf(sd, config)
    back = hf.state_dict_from_hf(theirs, model_type)
    kept = {k for k in sd if not (k == TIED and config.tie_word_embeddings)}
    assert back.keys() == kept
    assert all(torch.equal(back[k], sd[k]) for k in kept)


@pytest.mark.parametrize("model_type", sorted(TRANSFORMERS))
def test_saved_names_are_the_ones_transformers_saves(model_type, tmp_path):
    """The names minibert writes are exactly transformers' own file's, and its file reads back to itself."""
    config = tiny(model_type)
    ref = transformers_model(model_type, config)
    ref.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", framework="pt") as f:
        saved = set(f.keys())
    ours = hf.state_dict_to_hf(EncoderForPreTraining(config).state_dict(), config)
    assert set(ours) == saved
    theirs = load_weights(tmp_path / "model.safetensors")
    again = hf.state_dict_to_hf(hf.state_dict_from_hf(theirs, model_type), config)
    assert again.keys() == theirs.keys() and all(torch.equal(again[k], theirs[k]) for k in theirs)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_to_transformers_and_back_is_the_identity(name):
    c = preset(name)
    d = hf.FORMATS[family_of(c)].config_to_hf(c)
    assert d["model_type"] == family_of(c) and hf.config_from_hf(d) == c


def test_a_path_carries_its_layer_index_and_suffix():
    bert_wo = ("bert.encoder.layer.{i}.output.dense", "encoder.layers.{i}.mlp.Wo")
    assert translate("bert.encoder.layer.11.output.dense.bias", *bert_wo) == "encoder.layers.11.mlp.Wo.bias"
    assert translate("encoder.layers.3.mlp.Wo.weight", *reversed(bert_wo)) == "bert.encoder.layer.3.output.dense.weight"
    assert translate("bert.encoder.layer.1.output.dense_extra.bias", *bert_wo) is None  # whole path parts only
    assert translate("bert.encoder.layer.x.output.dense.bias", *bert_wo) is None  # a layer index is a number


def test_fused_matrices_split_at_their_row_blocks():
    c = preset("eurobert-tiny")  # grouped-query attention: k and v have fewer rows than q
    assert fused_rows("encoder.layers.0.attn.Wqkv", c) == [96, 32, 32]
    assert fused_rows("encoder.layers.0.mlp.Wi", c) == [256, 256]
    names = hf.FORMATS["eurobert"].state_dict_to_hf({"encoder.layers.1.mlp.Wi.weight": torch.zeros(512, 96)}, c)
    assert {k: tuple(v.shape) for k, v in names.items()} == {
        "model.layers.1.mlp.gate_proj.weight": (256, 96),
        "model.layers.1.mlp.up_proj.weight": (256, 96),
    }


def test_bare_model_keys_tf_names_and_buffers_load():
    bert = hf.FORMATS["bert"]
    sd = {
        "embeddings.LayerNorm.gamma": torch.ones(2),  # a BertModel's key, with TensorFlow's LayerNorm name
        "bert.embeddings.LayerNorm.beta": torch.zeros(2),
        "embeddings.position_ids": torch.arange(4),  # a buffer transformers once saved
    }
    out, unknown = bert.state_dict_to_minibert(sd)
    assert set(out) == {"encoder.embeddings.norm.weight", "encoder.embeddings.norm.bias"} and not unknown


def test_unknown_keys_and_missing_parts_are_named():
    sd = {
        "bert.encoder.layer.0.attention.self.query.weight": torch.zeros(4, 4),
        "bert.encoder.layer.0.attention.self.key.weight": torch.zeros(4, 4),
        "bert.encoder.layer.0.surprise.weight": torch.zeros(4),
    }
    with pytest.raises(CheckpointError) as err:
        hf.state_dict_from_hf(sd, "bert")
    msg = str(err.value)
    assert "bert.encoder.layer.0.surprise.weight" in msg
    assert "encoder.layers.0.attn.Wqkv.weight needs ['bert.encoder.layer.0.attention.self.value.weight']" in msg
    with pytest.raises(KeyError, match="no ModernBERT name for classifier.weight"):
        hf.FORMATS["modernbert"].state_dict_to_hf({"classifier.weight": torch.zeros(2, 4)}, preset("modernbert-tiny"))
