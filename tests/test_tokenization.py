"""minibert's BERT tokenizer against the Rust `tokenizers` and transformers, on the real vocabulary and corpus."""

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibert.hf import minilm_path
from minibert.text import (
    SPECIAL_TOKENS,
    BertTokenizer,
    basic_tokenize,
    normalize,
    train_wordpiece,
    truncate,
    wikipedia_lines,
    wordpiece,
)
from minibert.text.normalize import is_punctuation

tokenizers = pytest.importorskip("tokenizers")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

VOCAB = minilm_path() / "vocab.txt"

HARD = [
    "",
    " ",
    "!",
    "...",
    "?!?",
    "Café déjà vu, naïve Ångström",
    "ΣΟΦΟΣ σοφός ΣΑΣ",  # final sigma: Rust lower-cases one character at a time
    "İstanbul ﬁne ﬀ Straße",
    "北京大学 and 東京; こんにちは世界, 한국어",
    "emoji 😀🤖 👩‍👩‍👧 🇺🇸 ☃",
    "zero\u200bwidth\u200d joiner\ufeffbom \u2060",
    "tab\tnew\nline\r\x0b\x0cfeed",
    "ctl\x00\x01\x7f\x85x \ufffd",
    "\u00a0nbsp\u3000ideographic\u2028line",
    "e\u0301 combining a\u0308\u0301",
    "a" * 100,
    "b" * 101,  # over 100 characters: [UNK]
    "supercalifragilisticexpialidocious" * 3,
    "don't won't it's I'm we've they're",
    "$100 + 5% = ^_^ | `x` ~y~ @z #w",
    "https://example.com/a?b=c&d=e#frag",
    "x[MASK]y [CLS] [mask] [[SEP]] [PAD][UNK]",
    "##ing ## #",
    "\u0378 unassigned \U0010fffd private",
    "\u2e43 \u166d \u061d new punctuation",  # Unicode newer than tokenizers' tables
    "1234567890 3.14159 1,000,000",
]


@pytest.fixture(scope="module")
def tok():
    return BertTokenizer.from_pretrained(minilm_path())


@pytest.fixture(scope="module")
def rust():
    return tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=True)


@pytest.fixture(scope="module")
def lines():
    return wikipedia_lines("en")


def test_every_line_of_the_excerpt_matches_tokenizers(tok, rust, lines):
    assert len(lines) > 5000
    ours = [tok.encode(x) for x in lines]
    theirs = [e.ids for e in rust.encode_batch(lines)]
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    assert not bad, f"{len(bad)} lines differ, first: {lines[bad[0]][:200]!r}"


def test_every_consecutive_pair_of_lines_matches_tokenizers(tok, rust, lines):
    pairs = list(zip(lines[:-1], lines[1:]))
    ours = [tok._encode_one(a, b, True, False, None) for a, b in pairs]
    theirs = rust.encode_batch(pairs)
    assert all(a == (b.ids, b.type_ids) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("text", HARD)
def test_hard_strings_match_tokenizers(tok, rust, text):
    enc = rust.encode(text)
    assert tok.encode(text) == enc.ids
    assert tok.tokenize(text) == enc.tokens[1:-1]
    for skip in (True, False):
        assert tok.decode(enc.ids, skip_special_tokens=skip) == rust.decode(enc.ids, skip_special_tokens=skip)
    assert tok.encode(text, "pair " + text) == rust.encode(text, "pair " + text).ids


def test_hard_strings_match_transformers_fast_tokenizer(tok):
    transformers = pytest.importorskip("transformers")
    hf = transformers.BertTokenizer.from_pretrained(str(minilm_path()))
    ours = tok(HARD, HARD[::-1], max_length=24)
    theirs = hf(HARD, HARD[::-1], padding=True, truncation=True, max_length=24, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert ours[key].tolist() == theirs[key].tolist(), key
    assert tok.batch_decode(ours["input_ids"]) == hf.batch_decode(theirs["input_ids"], skip_special_tokens=True)


def test_every_code_point_is_classified_as_tokenizers_does():
    """Cleaning, CJK spacing, accent stripping, lower-casing and the punctuation split, code point by code point."""
    import unicodedata

    from tokenizers import normalizers, pre_tokenizers

    # U+11938 (Dives Akuru) decomposes under Python's NFD but not under the Rust crate's: the one known difference
    cps = [cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF and cp != 0x11938]
    text = "".join(f"a{chr(cp)}" for cp in cps)
    assert normalize(text) == normalizers.BertNormalizer(lowercase=True).normalize_str(text)
    cased = normalizers.BertNormalizer(lowercase=False, strip_accents=False, handle_chinese_chars=False)
    assert normalize(text, lowercase=False, strip_accents=False, cjk=False) == cased.normalize_str(text)
    # the split: every character that is punctuation, a symbol or a mark in some Unicode version, or a space
    maybe = [chr(cp) for cp in cps if unicodedata.category(chr(cp))[0] in "PSMZ" or cp < 128]
    text = "".join(f"a{c} " for c in maybe)
    words = [w for w, _ in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(normalize(text))]
    assert basic_tokenize(text) == words


def test_cased_vocabulary_keeps_case_and_accents(rust):
    cased = BertTokenizer.from_vocab_file(VOCAB, lowercase=False)
    ref = tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=False)
    for text in ["Hello World", "Café", "ΣΑΣ", *HARD]:
        assert cased.encode(text) == ref.encode(text).ids


@pytest.mark.parametrize("max_length", [3, 4, 5, 8, 17, 64])
def test_truncation_longest_first_matches_tokenizers(tok, lines, max_length):
    rust = tokenizers.BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    rust.enable_truncation(max_length)
    for i in range(0, 400, 3):
        a, b = lines[i][: (i * 37) % 300], lines[i + 1][: (i * 91) % 300]
        enc = rust.encode(a, b)
        assert tok._encode_one(a, b, True, True, max_length) == (enc.ids, enc.type_ids)
        assert tok.encode(a, truncation=True, max_length=max_length) == rust.encode(a).ids


def test_truncate_gives_the_spare_token_to_the_longer_text():
    assert truncate(list(range(10)), list(range(3)), 8) == (list(range(5)), list(range(3)))
    assert truncate(list(range(10)), list(range(10)), 7) == (list(range(3)), list(range(4)))
    assert truncate(list(range(10)), None, 4) == (list(range(4)), None)
    with pytest.raises(ValueError, match="max_length"):
        truncate([1], [2], -1)


def test_batch_call_pads_and_masks(tok):
    batch = tok(["Hello world!", "a"], pairs=["Second text", "b c"], max_length=8)
    assert batch["input_ids"].shape == (2, 8) and batch["input_ids"].dtype.is_floating_point is False
    assert batch["attention_mask"].sum(1).tolist() == [8, 6]
    assert batch["token_type_ids"][1].tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    assert batch["input_ids"][1, -2:].tolist() == [tok.pad_token_id] * 2
    fixed = tok(["a", "b c"], padding="max_length", max_length=10, return_tensors=None)
    assert [len(x) for x in fixed["input_ids"]] == [10, 10]
    ragged = tok(["a", "b c"], padding=False, return_tensors=None)
    assert [len(x) for x in ragged["input_ids"]] == [3, 4]
    assert tok("one text")["input_ids"].shape == (1, 4)


def test_special_token_ids_and_lookups(tok):
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        0,
        100,
        101,
        102,
        103,
    )
    assert tok.vocab_size == len(tok) == len(tok.vocab) == 30522
    assert tok.convert_ids_to_tokens(tok.convert_tokens_to_ids(["hello", "##ing", "zzzqqq"])) == [
        "hello",
        "##ing",
        "[UNK]",
    ]
    assert tok.encode("hello", add_special_tokens=False) == [tok.vocab["hello"]]


def test_long_words_become_unk_after_100_characters(tok):
    assert tok.tokenize("a" * 100) != ["[UNK]"]
    assert tok.tokenize("a" * 101) == ["[UNK]"]
    assert wordpiece("unaffable", {"un", "##aff", "##able"}) == ["un", "##aff", "##able"]
    assert wordpiece("unaffable", {"un", "##aff"}) == ["[UNK]"]


def test_bad_input_says_what_to_do(tok, tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="special tokens"):
        BertTokenizer(["a", "b", "[UNK]"])
    with pytest.raises(ValueError, match="max_length"):
        tok.encode("hello", "world", truncation=True, max_length=2)
    with pytest.raises(ValueError, match="padding"):
        tok(["a", "b c"], padding=False)
    with pytest.raises(ValueError, match="pairs"):
        tok(["a", "b"], pairs=["c"])
    with pytest.raises(IndexError, match="outside the vocabulary"):
        tok.decode([30522])
    with pytest.raises(TypeError, match="str"):
        tok.encode(["a list"])


def test_save_round_trips_and_transformers_reads_it(tok, tmp_path):
    tok.save(tmp_path)
    again = BertTokenizer.from_pretrained(tmp_path)
    text = "The quick brown fox, naïvely [MASK]."
    assert again.encode(text) == tok.encode(text)
    transformers = pytest.importorskip("transformers")
    assert transformers.BertTokenizer.from_pretrained(str(tmp_path))(text)["input_ids"] == tok.encode(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=60))
def test_arbitrary_unicode_round_trips_and_matches(tok, rust, text):
    ids = tok.encode(text, add_special_tokens=False)
    words = basic_tokenize(text)
    if tok.unk_token_id not in ids and not any(t in text for t in SPECIAL_TOKENS):
        # decoding without clean-up gives the normalised words joined by single spaces
        assert tok.decode(ids, clean_up_tokenization_spaces=False) == " ".join(words)
    if "\U00011938" not in text:
        assert ids == rust.encode(text, add_special_tokens=False).ids


def test_punctuation_includes_ascii_symbols():
    assert all(is_punctuation(c) for c in "$+^`|~<>=")
    assert not any(is_punctuation(c) for c in "aZ09 é")


# ---------------------------------------------------------------------------------------------------------------
# Training


@pytest.fixture(scope="module")
def small_corpus(lines):
    return lines[:400]


@pytest.mark.parametrize("scoring", ["likelihood", "ratio", "frequency"])
def test_trainer_reaches_the_size_and_covers_its_corpus(small_corpus, scoring):
    tok = train_wordpiece(small_corpus, 1500, scoring=scoring)
    assert tok.vocab_size == 1500 and len(set(tok.vocab)) == 1500
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for line in small_corpus[:50]:
        ids = tok.encode(line, add_special_tokens=False)
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, clean_up_tokenization_spaces=False) == " ".join(basic_tokenize(line))
    assert train_wordpiece(small_corpus, 1500, scoring=scoring).vocab == tok.vocab  # deterministic


def test_trainer_merges_by_score_on_a_toy_corpus():
    corpus = ["hug hug hug hug hug hug hug hug hug hug pug pug pug pug pug pun pun pun pun bun bun hugs hugs"]
    # 5 special tokens + 7 characters (b h p, ##g ##n ##s ##u), then the first merge gets id 12
    alphabet = train_wordpiece(corpus, 12).convert_ids_to_tokens(list(range(5, 12)))
    assert alphabet == ["b", "h", "p", "##g", "##n", "##s", "##u"]
    # frequency: "##u ##g" occurs 10 + 5 + 2 = 17 times (hug, pug, hugs), more than any other pair
    assert train_wordpiece(corpus, 13, scoring="frequency").convert_ids_to_tokens(12) == "##ug"
    # ratio count(ab) / (count(a) count(b)): "##g ##s" = 2 / (17 * 2) beats "##u ##g" = 17 / (23 * 17)
    assert train_wordpiece(corpus, 13, scoring="ratio").convert_ids_to_tokens(12) == "##gs"
    # likelihood count(ab) log(count(ab) N / (count(a) count(b))), N = 71 tokens: "##u ##g" = 17 log(71/23) = 19.2
    # beats "h ##u" = 12 log(71/23) = 13.5 and "##g ##s" = 2 log(71/17) = 2.9
    assert train_wordpiece(corpus, 13, scoring="likelihood").convert_ids_to_tokens(12) == "##ug"


def test_trainer_rejects_a_vocabulary_smaller_than_its_alphabet(small_corpus):
    with pytest.raises(ValueError, match="alphabet"):
        train_wordpiece(small_corpus, 20)
    with pytest.raises(ValueError, match="scoring"):
        train_wordpiece(small_corpus, 2000, scoring="bpe")


@pytest.mark.parametrize("scoring", ["likelihood", "ratio", "frequency"])
def test_the_plain_training_step_replays_the_fast_trainer(small_corpus, scoring):
    """pair_scores + merge_pair, one merge at a time, give the vocabulary train_wordpiece builds incrementally."""
    from collections import Counter

    from minibert.text import merge_pair, pair_scores, split_words

    counts = Counter(w for line in small_corpus[:25] for w in basic_tokenize(line))
    fast = train_wordpiece(small_corpus[:25], 260, scoring=scoring)
    order = {t: i for i, t in enumerate(fast.convert_ids_to_tokens(list(range(fast.vocab_size))))}
    splits = split_words(counts)
    alphabet = len({p for s in splits.values() for p in s}) + len(SPECIAL_TOKENS)
    vocab = list(order)[:alphabet]
    ids = {t: i for i, t in enumerate(vocab)}
    total = sum(len(s) * counts[w] for w, s in splits.items())
    while len(vocab) < 260:
        scores = pair_scores(splits, counts, total, scoring)
        a, b = min(scores, key=lambda p: (-scores[p], ids[p[0]], ids[p[1]]))  # ties: the smallest ids
        splits = merge_pair(splits, a, b)
        vocab.append(a + b.removeprefix("##"))
        ids[vocab[-1]] = len(vocab) - 1
    assert vocab == list(order)
