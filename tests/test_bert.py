"""BERT parity with transformers, offline: tiny random reference models converted to minibert."""

import pytest
import torch
from parity_helpers import maxdiff, padded_batch
from transformers import BertConfig, BertForPreTraining, BertForSequenceClassification, BertModel

from minibert import EncoderForSequenceClassification, hf
from minibert.encoder import Encoder

TOL = 1e-5


def tiny_hf_config(**kw) -> BertConfig:
    base = dict(
        vocab_size=101,
        hidden_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=67,
        max_position_embeddings=40,
        attn_implementation="eager",  # eager returns the attention probabilities
    )
    return BertConfig(**{**base, **kw})


def batch(padded: bool = True):
    """Three rows, 17 tokens, segment B from token 9; rows 1 and 2 padded after 12 and 5 tokens."""
    ids, mask = padded_batch((17, 12, 5) if padded else (17, 17, 17), low=1, vocab=101)
    tt = torch.zeros_like(ids)
    tt[:, 9:] = 1
    tt[mask == 0] = 0
    return ids, mask, tt


@pytest.fixture(scope="module")
def pair():
    torch.manual_seed(0)
    ref = BertForPreTraining(tiny_hf_config()).eval()
    mine = hf.from_pretrained(ref.state_dict(), config=hf.bert_config_from_hf(ref.config.to_dict()))
    return ref, mine


@pytest.mark.parametrize("padded", [False, True])
def test_pretraining_outputs_match_transformers(pair, padded):
    ref, mine = pair
    ids, mask, tt = batch(padded=padded)
    with torch.no_grad():
        r = ref(
            input_ids=ids, attention_mask=mask, token_type_ids=tt, output_hidden_states=True, output_attentions=True
        )
        o = mine(ids, mask, tt, output_hidden_states=True, output_attentions=True)
    assert len(o.encoder.hidden_states) == len(r.hidden_states) == 4
    for a, b in zip(o.encoder.hidden_states, r.hidden_states):
        assert maxdiff(a, b) <= TOL
    for a, b in zip(o.encoder.attentions, r.attentions):
        assert a.shape == b.shape == (3, 4, 17, 17)
        assert maxdiff(a, b) <= TOL
    assert maxdiff(o.mlm_logits, r.prediction_logits) <= TOL
    assert maxdiff(o.nsp_logits, r.seq_relationship_logits) <= TOL


def test_sdpa_path_equals_probability_path(pair):
    _, mine = pair
    ids, mask, tt = batch()
    with torch.no_grad():
        fast = mine(ids, mask, tt).mlm_logits
        slow = mine(ids, mask, tt, output_attentions=True).mlm_logits
    assert maxdiff(fast, slow) <= TOL


def test_masked_positions_score_only_those(pair):
    _, mine = pair
    ids, mask, tt = batch()
    where = torch.zeros_like(ids, dtype=torch.bool)
    where[0, 3] = where[1, 7] = where[2, 1] = True
    with torch.no_grad():
        full = mine(ids, mask, tt).mlm_logits
        some = mine(ids, mask, tt, masked_positions=where).mlm_logits
    assert some.shape == (3, 101)
    assert maxdiff(some, full[where]) <= TOL


def test_bert_model_checkpoint_loads_into_encoder():
    torch.manual_seed(1)
    ref = BertModel(tiny_hf_config()).eval()
    enc = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.bert_config_from_hf(ref.config.to_dict()))
    ids, mask, tt = batch()
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask, token_type_ids=tt)
        o = enc(ids, mask, tt)
    assert maxdiff(o.last_hidden_state, r.last_hidden_state) <= TOL
    assert maxdiff(o.pooler_output, r.pooler_output) <= TOL


def test_sequence_classification_matches_transformers():
    torch.manual_seed(2)
    ref = BertForSequenceClassification(tiny_hf_config(num_labels=3)).eval()
    cfg = hf.bert_config_from_hf(ref.config.to_dict())
    mine = hf.from_pretrained(ref.state_dict(), model_class=EncoderForSequenceClassification, config=cfg, num_labels=3)
    ids, mask, tt = batch()
    with torch.no_grad():
        assert maxdiff(mine(ids, mask, tt), ref(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits) <= TOL


def test_old_gamma_beta_names_and_missing_decoder_keys_load(pair):
    ref, mine = pair
    sd = {k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
          for k, v in ref.state_dict().items() if not k.startswith("cls.predictions.decoder.")}  # fmt: skip
    again = hf.from_pretrained(sd, config=mine.config)
    ids, mask, tt = batch()
    with torch.no_grad():
        assert maxdiff(again(ids, mask, tt).mlm_logits, mine(ids, mask, tt).mlm_logits) == 0


def test_decoder_bias_follows_transformers_tying(pair):
    ref, _ = pair
    sd = dict(ref.state_dict())
    assert "cls.predictions.decoder.weight" in sd  # state_dict() keeps the tied keys; save_pretrained drops them
