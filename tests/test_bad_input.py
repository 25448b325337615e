"""Bad input to the API gets a message that names the argument or the file and says what to do: no traceback from
deep inside torch, no silent empty answer, no advice to unpickle code."""

import json
import os
import re
import shutil

import pytest
import torch

from minibert import EncoderConfig, EncoderForPreTraining, hf
from minibert.files import CheckpointError, atomic_write, load_weights, read_json
from minibert.pretrain import export_hf, fill_mask, load_pretrained, save_model
from minibert.text import SPECIAL_TOKENS, BertTokenizer

WORDS = ["the", "capital", "of", "france", "is", "paris", "a", "word", "."]
TINY = dict(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position_embeddings=16)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer([*SPECIAL_TOKENS, *WORDS])


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    return EncoderForPreTraining(EncoderConfig(vocab_size=len(tokenizer), **TINY)).eval()


@pytest.fixture
def saved(model, tokenizer, tmp_path):
    """A minibert model folder: config.json, model.safetensors, vocab.txt, tokenizer_config.json."""
    return save_model(model, tmp_path / "model", tokenizer)


# -- the model's inputs


def test_negative_token_type_ids(model):
    ids = torch.tensor([[2, 5, 6, 3]])
    with pytest.raises(ValueError, match=r"token_type_ids holds -1; segment numbers start at 0: 0 for the first"):
        model(ids, token_type_ids=torch.tensor([[0, -1, 0, 0]]))
    with pytest.raises(TypeError, match=r"token_type_ids must be integer segment numbers \(torch.long\)"):
        model(ids, token_type_ids=torch.zeros(1, 4))


def test_a_batch_of_empty_sequences(model):
    with pytest.raises(ValueError, match=r"input_ids has shape \(1, 0\): the sequences are empty; every sequence"):
        model(torch.zeros(1, 0, dtype=torch.long))
    assert model(torch.zeros(0, 4, dtype=torch.long)).mlm_logits.shape[0] == 0  # no sequences: nothing to say


def test_attention_mask_must_be_zeros_and_ones(model):
    ids = torch.tensor([[2, 5, 6, 3]])
    with pytest.raises(ValueError, match="attention_mask holds 2; use 1 for a token and 0 for padding"):
        model(ids, attention_mask=torch.tensor([[1, 1, 2, 1]]))
    model(ids, attention_mask=torch.tensor([[True, True, True, False]]))  # bool masks are fine


# -- the tokenizer's inputs


def test_tokenizer_refuses_an_empty_batch_and_non_text(tokenizer):
    with pytest.raises(ValueError, match=r"got an empty list of texts: pass at least one text \(an empty string"):
        tokenizer([])
    assert tokenizer([""])["input_ids"].tolist() == [[tokenizer.cls_token_id, tokenizer.sep_token_id]]
    with pytest.raises(TypeError, match="texts must be a str or a list of str, got NoneType"):
        tokenizer(None)
    with pytest.raises(TypeError, match=r"texts is bytes: decode it first"):
        tokenizer(b"the word")
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, not a str"):
        tokenizer(["the word", None])
    with pytest.raises(TypeError, match=r"pairs\[0\] is int, not a str"):
        tokenizer(["the word"], pairs=[3])
    with pytest.raises(TypeError, match="encode takes one text .a str., got list; for a batch of texts call the"):
        tokenizer.encode(["the", "word"])
    assert tokenizer(("the", "word"))["input_ids"].shape == (2, 3)  # any sequence of str still works


# -- fill_mask


def test_fill_mask_raises_for_a_mask_past_the_positions(model, tokenizer):
    text = "word " * 20 + "[MASK]"
    with pytest.raises(ValueError, match=r"the \[MASK\] at token 21 \(of 23\) is past the model's 16 positions"):
        fill_mask(model, tokenizer, text)
    [options] = fill_mask(model, tokenizer, "[MASK] " + "word " * 20, top_k=2)  # cut after the mask: answered
    assert len(options) == 2
    assert len(fill_mask(model, tokenizer, "[MASK]", top_k=1)) == 1


def test_fill_mask_top_k_and_spelling(model, tokenizer):
    V = len(tokenizer)
    for top_k in (0, -1, V + 1, 2.5):
        with pytest.raises(ValueError, match=rf"top_k must be between 1 and the vocabulary size \({V}\), got"):
            fill_mask(model, tokenizer, "a [MASK].", top_k=top_k)
    assert len(fill_mask(model, tokenizer, "a [MASK].", top_k=V)[0]) == V  # the whole vocabulary is allowed
    with pytest.raises(ValueError, match=r"write \[MASK\] in capitals"):
        fill_mask(model, tokenizer, "a [mask].")


# -- files


def test_a_pickle_with_code_is_refused_without_advice_to_unpickle_it(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    torch.save({"w": torch.zeros(1), "x": Evil()}, tmp_path / "evil.bin")
    with pytest.raises(CheckpointError) as e:
        load_weights(tmp_path / "evil.bin")
    message = str(e.value)
    assert "evil.bin holds Python objects other than tensors, which minibert refuses to load" in message
    assert "model.safetensors" in message and "weights_only" not in message and "corrupt" not in message


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "is empty (0 bytes): it was cut short while being written or copied"),
        (lambda p: p.mkdir(), "is a folder, not a weights file"),
        (lambda p: p.write_bytes(b"garbage\n"), "the file is corrupt or truncated, or not a weights file"),
    ],
)
def test_weights_files_that_cannot_be_read(tmp_path, make, message):
    path = tmp_path / "pytorch_model.bin"
    make(path)
    with pytest.raises(CheckpointError, match=re.escape(message)) as e:
        load_weights(path)
    assert str(path) in str(e.value) and "weights_only" not in str(e.value)


def test_a_truncated_config_names_the_file(model, tmp_path):
    folder = hf.save_pretrained(model, tmp_path / "hf")
    config = folder / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(CheckpointError) as e:
        hf.read_hf_config(folder)
    assert str(e.value).startswith(f"{config} is damaged (not valid JSON: ")
    assert "copy or save it again" in str(e.value)
    config.write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="holds a JSON list, not an object of settings"):
        read_json(config)


def test_damaged_model_folders_name_the_file(saved):
    vocab, config = saved / "vocab.txt", saved / "config.json"
    good_vocab = vocab.read_bytes()
    vocab.write_bytes(b"\xff\xfe[PAD]\n")
    with pytest.raises(CheckpointError, match=re.escape(f"{vocab} is damaged: it is not UTF-8 text")):
        load_pretrained(saved)
    vocab.write_bytes(b"")
    with pytest.raises(CheckpointError, match=re.escape(f"{vocab} is empty")):
        load_pretrained(saved)
    vocab.write_text("[PAD]\nthe\n")
    with pytest.raises(CheckpointError, match=re.escape(f"{vocab}: the vocabulary lacks the special tokens")):
        load_pretrained(saved)
    vocab.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{saved} has no vocab.txt")):
        load_pretrained(saved)
    vocab.write_bytes(good_vocab)
    (saved / "tokenizer_config.json").write_text('{"do_lower_case": tr')
    with pytest.raises(CheckpointError, match="tokenizer_config.json is damaged"):
        load_pretrained(saved)
    (saved / "tokenizer_config.json").unlink()
    config.write_text('{"hidden_size": "big"}')
    with pytest.raises(CheckpointError, match=re.escape(f"{config} is not a minibert model config")):
        load_pretrained(saved)
    config.unlink()
    config.mkdir()
    with pytest.raises(CheckpointError, match=re.escape(f"{config} is a folder, not a model config")):
        load_pretrained(saved)
    with pytest.raises(CheckpointError, match="is a file; give the folder that holds config.json"):
        load_pretrained(vocab)


def test_export_refuses_its_own_source_and_leaves_it_intact(saved, tmp_path):
    before = {p.name: p.read_bytes() for p in saved.iterdir()}
    with pytest.raises(ValueError, match="is the checkpoint being exported: exporting into it would overwrite it"):
        export_hf(saved, saved)
    with pytest.raises(ValueError, match="is inside the checkpoint being exported"):
        export_hf(saved, saved / "hf")
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == before
    load_pretrained(saved)
    out = export_hf(saved, tmp_path / "hf")
    with pytest.raises(ValueError, match="is not empty .config.json, model.safetensors, tokenizer_config.json, vocab"):
        export_hf(saved, out)
    assert export_hf(saved, out, force=True) == out


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_atomic_writes_follow_the_umask(tmp_path):
    previous = os.umask(0o027)
    try:
        atomic_write(tmp_path / "a.json", lambda f: open(f, "w").write(json.dumps({})))
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
        os.umask(0o022)
        atomic_write(tmp_path / "a.json", lambda f: open(f, "w").write(json.dumps({"b": 1})))
        assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)
    assert read_json(tmp_path / "a.json") == {"b": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temporary file left behind


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="POSIX permissions (root reads everything)")
def test_an_unreadable_file_says_permission_denied(saved):
    (saved / "model.safetensors").chmod(0o000)
    try:
        with pytest.raises(CheckpointError, match="permission denied; ask its owner to make it readable"):
            load_pretrained(saved)
    finally:
        (saved / "model.safetensors").chmod(0o644)
    shutil.rmtree(saved)
