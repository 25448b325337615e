"""EuroBERT: parity with transformers offline (grouped-query attention, padding), presets, saving back."""

import pytest
import torch
from parity_helpers import assert_matches, maxdiff, padded_batch, randomise
from transformers import EuroBertConfig, EuroBertForMaskedLM, EuroBertModel

from minibert import EncoderForPreTraining, hf, preset
from minibert.config import family_of
from minibert.encoder import Encoder, MultiHeadAttention, RMSNorm


def tiny_hf_config(**kw) -> EuroBertConfig:
    base = dict(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=8,
        num_key_value_heads=2,  # grouped-query attention: 4 query heads per key/value head
        max_position_embeddings=256,
        rope_parameters={"rope_type": "default", "rope_theta": 250_000.0},
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        mask_token_id=3,
        attn_implementation="eager",
    )
    return EuroBertConfig(**{**base, **kw})


def batch(vocab: int = 128, seed: int = 0):
    return padded_batch((40, 25, 6), low=4, vocab=vocab, seed=seed)


@pytest.fixture(scope="module")
def mlm_pair():
    ref = randomise(EuroBertForMaskedLM(tiny_hf_config()), 0)
    return ref, hf.from_pretrained(ref.state_dict(), config=hf.config_from_hf(ref.config.to_dict()))


def test_config_is_read_as_a_eurobert(mlm_pair):
    ref, mine = mlm_pair
    c = mine.config
    assert (c.num_heads, c.kv_heads, c.norm, c.activation, c.rope_theta) == (8, 2, "rmsnorm", "swiglu", 250_000.0)
    assert not c.tie_word_embeddings and not c.head_transform and not c.embedding_norm and c.final_norm
    assert family_of(c) == "eurobert"
    n_ref = sum(p.numel() for p in ref.parameters())
    assert sum(p.numel() for p in mine.parameters()) == n_ref  # nothing missing, nothing extra


def test_masked_lm_matches_transformers_with_padding(mlm_pair):
    ref, mine = mlm_pair
    ids, mask = batch()
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask).logits
        o = mine(ids, mask).mlm_logits
    assert r.abs().max() > 1  # the logits are not all near zero
    assert_matches(o, r, mask.bool())
    assert_matches(o, r)  # neither model unpads: even the padding positions agree


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_model_matches_transformers_with_padding(attn):
    ref = randomise(EuroBertModel(tiny_hf_config(attn_implementation=attn)), 1)
    mine = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.config_from_hf(ref.config.to_dict()))
    ids, mask = batch(seed=1)
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        o = mine(ids, mask).last_hidden_state
        r_full = ref(input_ids=ids).last_hidden_state
        o_full = mine(ids).last_hidden_state
    assert_matches(o, r, mask.bool())
    assert_matches(o_full, r_full)


def test_attentions_match_transformers_and_repeat_the_kv_heads():
    ref = randomise(EuroBertModel(tiny_hf_config()), 2)
    mine = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.config_from_hf(ref.config.to_dict()))
    ids, mask = batch(seed=2)
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        o = mine(ids, mask, output_attentions=True).attentions
    assert len(o) == len(r) == 3 and o[0].shape == (3, 8, 40, 40)
    for a, b in zip(o, r):
        # probabilities in [0, 1]: rounding in the (large) scores moves them by up to 2e-5 on any kernel
        assert maxdiff(a, b, mask.bool()[:, None, :, None].expand_as(a)) <= 2e-4


def test_grouped_query_attention_is_multi_head_attention_with_repeated_kv_heads():
    """GQA equals MHA whose key/value weights repeat each group's head: the saving is in parameters, not maths."""
    gqa_config = preset("eurobert-tiny")
    gqa = MultiHeadAttention(gqa_config).eval()
    mha = MultiHeadAttention(gqa_config.replace(num_kv_heads=None)).eval()
    H, KV, D = gqa_config.num_heads, gqa_config.kv_heads, gqa_config.head_dim
    q, k, v = gqa.Wqkv.weight.split([H * D, KV * D, KV * D])
    repeat = lambda w: w.view(KV, D, -1).repeat_interleave(H // KV, dim=0).reshape(H * D, -1)  # noqa: E731
    with torch.no_grad():
        mha.Wqkv.weight.copy_(torch.cat([q, repeat(k), repeat(v)]))
        mha.Wo.weight.copy_(gqa.Wo.weight)
    x = torch.randn(2, 11, gqa_config.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert maxdiff(gqa(x)[0], mha(x)[0]) <= 1e-5
    assert gqa.Wqkv.weight.numel() == (H + 2 * KV) * D * gqa_config.hidden_size < mha.Wqkv.weight.numel()


def test_rmsnorm_matches_transformers():
    from transformers.models.eurobert.modeling_eurobert import EuroBertRMSNorm

    ref = EuroBertRMSNorm(32, eps=1e-5)
    mine = RMSNorm(32, eps=1e-5)
    with torch.no_grad():
        w = torch.randn(32, generator=torch.Generator().manual_seed(0))
        ref.weight.copy_(w)
        mine.weight.copy_(w)
        x = torch.randn(4, 7, 32, generator=torch.Generator().manual_seed(1)) * 3
        assert maxdiff(mine(x), ref(x)) <= 1e-5


@pytest.mark.parametrize("name", ["eurobert-210m", "eurobert-610m", "eurobert-2.1b"])
def test_presets_have_the_released_sizes(name):
    """Parameter counts equal transformers' EuroBertModel built on the meta device from the same config."""
    c = preset(name)
    with torch.device("meta"):
        theirs = EuroBertModel(
            EuroBertConfig(**{k: v for k, v in hf.eurobert_config_to_hf(c).items() if k != "architectures"})
        )
        mine = Encoder(c)
    n_theirs = sum(p.numel() for p in theirs.parameters())
    assert mine.num_parameters() == n_theirs
    published = {"eurobert-210m": 210e6, "eurobert-610m": 610e6, "eurobert-2.1b": 2.1e9}[name]
    assert abs(n_theirs - published) / published < 0.03


@pytest.mark.parametrize("name", ["eurobert-small", "eurobert-mini", "eurobert-tiny"])
def test_cpu_presets_use_grouped_query_attention(name):
    c = preset(name)
    assert c.kv_heads < c.num_heads and family_of(c) == "eurobert"
    model = EncoderForPreTraining(c).eval()
    ids = torch.randint(1, c.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    assert model(ids).mlm_logits.shape == (2, 9, c.vocab_size)


def test_saved_model_loads_in_transformers(tmp_path, mlm_pair):
    _, mine = mlm_pair
    folder = hf.save_pretrained(mine, tmp_path / "eurobert")
    ref = EuroBertForMaskedLM.from_pretrained(folder, attn_implementation="eager").eval()
    again = hf.from_pretrained(folder)
    ids, mask = batch(seed=3)
    with torch.no_grad():
        o = mine(ids, mask).mlm_logits
        assert_matches(o, ref(input_ids=ids, attention_mask=mask).logits, mask.bool())
        assert maxdiff(again(ids, mask).mlm_logits, o) == 0


def test_transformers_folder_loads(tmp_path):
    ref = randomise(EuroBertForMaskedLM(tiny_hf_config()), 4)
    ref.save_pretrained(tmp_path / "ref")
    mine = hf.from_pretrained(tmp_path / "ref")
    ids, mask = batch(seed=4)
    with torch.no_grad():
        assert_matches(mine(ids, mask).mlm_logits, ref(input_ids=ids, attention_mask=mask).logits, mask.bool())


def test_wrong_checkpoint_names_the_keys(mlm_pair):
    ref, _ = mlm_pair
    sd = dict(ref.state_dict())
    sd.pop("model.layers.1.self_attn.k_proj.weight")
    sd["model.layers.0.extra.weight"] = torch.zeros(1)
    with pytest.raises(Exception, match=r"k_proj|extra"):
        hf.from_pretrained(sd, config=hf.config_from_hf(ref.config.to_dict()))


def test_a_bert_config_cannot_be_saved_as_eurobert():
    with pytest.raises(ValueError, match="not a EuroBERT"):
        hf.eurobert_config_to_hf(preset("bert-tiny"))


def test_config_reads_the_hub_format():
    """The published config.json (rope_theta at the top level, as the EuroBERT checkpoints write it)."""
    d = {
        "model_type": "eurobert", "vocab_size": 128256, "hidden_size": 1152, "num_hidden_layers": 26,
        "num_attention_heads": 18, "num_key_value_heads": 6, "intermediate_size": 4096, "hidden_act": "silu",
        "rope_theta": 250000.0, "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "mlp_bias": False,
        "attention_bias": False, "pad_token_id": 128001, "max_position_embeddings": 8192,
    }  # fmt: skip
    assert hf.config_from_hf(d) == preset("eurobert-610m")
    with pytest.raises(ValueError, match="hidden_act"):
        hf.config_from_hf({**d, "hidden_act": "gelu"})
