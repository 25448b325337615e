"""minibert's byte-level BPE against `tokenizers`: pre-tokenization, training, encoding, decoding."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert.text import ByteLevelBPE, bytes_to_unicode, pre_tokenize, train_bpe, wikipedia_lines
from minibert.text.bpe import _NEWER_LETTERS, _NEWER_NUMBERS

tokenizers = pytest.importorskip("tokenizers")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HARD = [
    "",
    " ",
    "  hi  there  ",
    "Hello, world! It's 2024; they'll've gone.",
    "Café déjà vu 😀 北京 Ελληνικά",
    "<s>special</s> inside <s>",
    "\n\n\ttab\r\n",
    "a" * 300,
    "1234567890 3.14 1e-9",
    "zero\u200bwidth \ufeff\x00\x7f",
    "\u1c89\U000105c0 \U00010d40 newer letters and digits",
]


@pytest.fixture(scope="module")
def lines():
    return wikipedia_lines("en")


@pytest.fixture(scope="module")
def reference(lines):
    """A byte-level BPE trained by `tokenizers` on part of the excerpt, with two special tokens."""
    ref = tokenizers.ByteLevelBPETokenizer()
    ref.train_from_iterator(
        lines[:2000], vocab_size=3000, min_frequency=2, show_progress=False, special_tokens=["<s>", "</s>"]
    )
    return ref


def test_byte_alphabet_is_gpt2s():
    table = bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert set(table.values()) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())


def test_pre_tokenizer_matches_tokenizers():
    pt = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    newer = []
    for item in (_NEWER_LETTERS + " " + _NEWER_NUMBERS).split():
        a, _, b = item.partition("-")
        newer += range(int(a, 16), int(b or a, 16) + 1, 7)
    sample = [cp for cp in [*range(0, 0x30000, 5), *newer] if not 0xD800 <= cp <= 0xDFFF]
    text = "".join(f"a{chr(cp)}b 1{chr(cp)}1 {chr(cp)}'s " for cp in sample)
    assert pre_tokenize(text) == [w for w, _ in pt.pre_tokenize_str(text)]
    for s in HARD:
        assert pre_tokenize(s) == [w for w, _ in pt.pre_tokenize_str(s)]
    prefixed = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    assert pre_tokenize("Hello world", add_prefix_space=True) == [
        w for w, _ in prefixed.pre_tokenize_str("Hello world")
    ]


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_trainer_reproduces_tokenizers_merges(lines, add_prefix_space):
    ref = tokenizers.ByteLevelBPETokenizer(add_prefix_space=add_prefix_space)
    ref.train_from_iterator(lines[:400], vocab_size=1200, min_frequency=2, show_progress=False, special_tokens=["<s>"])
    model = json.loads(ref._tokenizer.to_str())["model"]
    ours = train_bpe(lines[:400], 1200, min_frequency=2, special_tokens=["<s>"], add_prefix_space=add_prefix_space)
    assert ours.merges == [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    assert ours.vocab == model["vocab"]


def test_trainer_stops_at_min_frequency():
    # words: "ab" once, "Ġab" twice, "Ġcd" once; the pair a b occurs 3 times, then Ġ ab twice
    assert train_bpe(["ab ab ab cd"], 10_000, min_frequency=3).merges == [("a", "b")]
    assert train_bpe(["ab ab ab cd"], 10_000, min_frequency=2).merges == [("a", "b"), ("Ġ", "ab")]
    with pytest.raises(ValueError, match="256"):
        train_bpe(["x"], 100)


def test_every_line_of_the_excerpt_matches_a_tokenizers_vocabulary(reference, lines):
    ours = ByteLevelBPE.from_tokenizer_json(json.loads(reference._tokenizer.to_str()))
    assert ours.vocab_size == 3000
    theirs = [e.ids for e in reference.encode_batch(lines)]
    mine = [ours.encode(x) for x in lines]
    bad = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
    assert not bad, f"{len(bad)} lines differ, first: {lines[bad[0]][:200]!r}"
    assert all(ours.decode(ids) == x for ids, x in zip(mine[:500], lines[:500]))


@pytest.mark.parametrize("text", HARD)
def test_hard_strings_match_tokenizers(reference, text):
    ours = ByteLevelBPE.from_tokenizer_json(json.loads(reference._tokenizer.to_str()))
    ids = reference.encode(text).ids
    assert ours.encode(text) == ids
    assert ours.decode(ids) == reference.decode(ids)
    assert ours.decode(ids, skip_special_tokens=False) == reference.decode(ids, skip_special_tokens=False)


def test_template_and_special_tokens_as_in_modernbert(reference, tmp_path):
    """ModernBERT's tokenizer.json: special tokens matched in the text, [CLS] text [SEP] around each sequence."""
    from tokenizers.processors import TemplateProcessing

    tok = tokenizers.Tokenizer.from_str(reference._tokenizer.to_str())
    tok.add_special_tokens(["[CLS]", "[SEP]", "[MASK]"])
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = ByteLevelBPE.from_tokenizer_json(tmp_path)
    for text in ["The capital of France is [MASK].", "[MASK][MASK] x", *HARD]:
        assert ours.encode(text) == tok.encode(text).ids
    assert ours.decode(ours.encode("a [MASK] b")) == tok.decode(tok.encode("a [MASK] b").ids)


def test_saved_json_loads_in_tokenizers(lines):
    ours = train_bpe(lines[:300], 800)
    theirs = tokenizers.Tokenizer.from_str(json.dumps(ours.to_tokenizer_json()))
    for x in lines[300:340]:
        assert theirs.encode(x).ids == ours.encode(x)


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="256 byte symbols"):
        ByteLevelBPE({"a": 0}, [])
    with pytest.raises(ValueError, match="BPE model"):
        ByteLevelBPE.from_tokenizer_json({"model": {"type": "WordPiece"}})
    with pytest.raises(FileNotFoundError):
        ByteLevelBPE.from_tokenizer_json("/nonexistent/tokenizer.json")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=50))
def test_arbitrary_unicode_round_trips_and_matches(reference, text):
    ours = ByteLevelBPE.from_tokenizer_json(json.loads(reference._tokenizer.to_str()))
    ids = ours.encode(text)
    if "<s>" not in text and "</s>" not in text:
        assert ours.decode(ids) == text  # byte-level BPE loses nothing
    assert ids == reference.encode(text).ids


def test_ignore_merges_and_nfc_as_in_newer_tokenizer_files(reference):
    d = json.loads(reference._tokenizer.to_str())
    d["model"]["ignore_merges"] = True
    d["normalizer"] = {"type": "NFC"}
    theirs = tokenizers.Tokenizer.from_str(json.dumps(d))
    ours = ByteLevelBPE.from_tokenizer_json(d)
    for text in ["Cafe\u0301 déjà", "the antidisestablishmentarianism of 1999", *HARD]:
        assert ours.encode(text) == theirs.encode(text).ids
