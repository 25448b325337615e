import pytest
import torch

from minibert import EncoderConfig, preset
from minibert.encoder import Encoder, EncoderForPreTraining


def count(config: EncoderConfig, cls=Encoder) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in cls(config).parameters())


def test_bert_base_and_large_have_the_papers_sizes():
    # Devlin et al. report 110M and 340M; transformers' BertModel has exactly these counts
    assert count(preset("bert-base")) == 109_482_240
    assert count(preset("bert-large")) == 335_141_888
    assert round(count(preset("bert-base")) / 1e7) * 10 == 110
    assert round(count(preset("bert-large")) / 1e7) * 10 == 340


def test_pretraining_model_ties_decoder_to_embeddings():
    m = EncoderForPreTraining(preset("bert-tiny"))
    assert m.mlm_head.decoder.weight is m.encoder.embeddings.tok_embeddings.weight


def test_config_rejects_inconsistent_heads():
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(hidden_size=100, num_heads=12)
    with pytest.raises(ValueError, match="multiple"):
        EncoderConfig(num_heads=12, num_kv_heads=5)
    with pytest.raises(KeyError, match="unknown preset"):
        preset("bert-huge")


def test_config_round_trips_through_dict():
    c = preset("bert-mini", vocab_size=8000)
    assert EncoderConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown"):
        EncoderConfig.from_dict({**c.to_dict(), "colour": "red"})


def test_each_preset_is_of_the_family_its_name_says():
    from minibert.config import FAMILIES, PRESETS, family_of

    for name, config in PRESETS.items():
        expected = "bert" if name.startswith(("bert", "minilm")) else name.split("-")[0]
        assert family_of(config) == expected, name
        assert all(f.matches(config) == (f.name == expected) for f in FAMILIES.values())


def test_a_family_names_what_keeps_a_config_out_of_it():
    from minibert.config import BERT, MODERNBERT, family_of

    hybrid = preset("bert-tiny", norm_position="pre")  # a pre-LN BERT is none of the three
    assert family_of(hybrid) is None
    assert BERT.differences(hybrid) == {"norm_position": "pre"}
    assert MODERNBERT.differences(preset("modernbert-tiny", activation="gelu")) == {"activation": "gelu"}
    with pytest.raises(ValueError, match="would not be a ModernBERT"):
        MODERNBERT.config(num_layers=2, position_embedding="learned")
