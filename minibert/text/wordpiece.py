"""BERT's WordPiece tokenizer and a WordPiece trainer, token for token equal to Hugging Face's.

Two steps turn text into ids. The *basic tokenizer* cleans the text (control characters out, every kind of
whitespace to a space, spaces around CJK ideographs), lower-cases it and strips accents for uncased vocabularies,
then splits it on whitespace and punctuation. *WordPiece* cuts each word greedily into the longest vocabulary
pieces, continuations marked ``##``; a word with no cut, or longer than 100 characters, becomes ``[UNK]``.

The rules follow the Rust ``tokenizers`` library (what ``transformers`` runs today) character for character:
it strips accents *before* lower-casing, lower-cases one character at a time (no final sigma), removes vertical
tab and form feed as control characters, and truncates pairs "longest first" by its own arithmetic. Speed comes
from an ASCII fast path, one compiled regex for the split and a per-word cache (text is Zipfian: most words repeat).
"""

from __future__ import annotations

import bisect
import heapq
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

from ..files import atomic_write

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PREFIX = "##"  # marks a piece that continues a word
MAX_CHARS_PER_WORD = 100  # Hugging Face's limit (Google's original BERT used 200)
MODEL_MAX_LENGTH = 512
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
_CACHE_LIMIT = 1 << 20  # words kept in the per-word cache before it is emptied

# ---------------------------------------------------------------------------------------------------------------
# Character classes, as the Rust tokenizers library defines them
#
# BERT's rules are stated with Unicode categories: control = Cc/Cf/Co, punctuation = P* (plus all ASCII symbols),
# accent = Mn. The Rust tokenizers classify characters with Unicode 8.0 tables, older than Python's unicodedata, so
# characters added or re-categorised since would be split differently. The exact sets it uses, measured code point
# by code point against tokenizers 0.23, are stored below as hex ranges.

_CONTROL_RANGES = (
    "0-8 b-c e-1f 7f-9f ad 600-605 61c 6dd 70f 180e 200b-200f 202a-202e 2060-2064 2066-206f e000-f8ff feff fff9-fffb "
    "fffd 110bd 1bca0-1bca3 1d173-1d17a e0001 e0020-e007f f0000-ffffd 100000-10fffd "
)
_PUNCT_RANGES = (
    "21-2f 3a-40 5b-60 7b-7e a1 a7 ab b6-b7 bb bf 37e 387 55a-55f 589-58a 5be 5c0 5c3 5c6 5f3-5f4 609-60a 60c-60d 61b "
    "61e-61f 66a-66d 6d4 700-70d 7f7-7f9 830-83e 85e 964-965 970 af0 df4 e4f e5a-e5b f04-f12 f14 f3a-f3d f85 fd0-fd4 "
    "fd9-fda 104a-104f 10fb 1360-1368 1400 166d-166e 169b-169c 16eb-16ed 1735-1736 17d4-17d6 17d8-17da 1800-180a "
    "1944-1945 1a1e-1a1f 1aa0-1aa6 1aa8-1aad 1b5a-1b60 1bfc-1bff 1c3b-1c3f 1c7e-1c7f 1cc0-1cc7 1cd3 2010-2027 "
    "2030-2043 2045-2051 2053-205e 207d-207e 208d-208e 2308-230b 2329-232a 2768-2775 27c5-27c6 27e6-27ef 2983-2998 "
    "29d8-29db 29fc-29fd 2cf9-2cfc 2cfe-2cff 2d70 2e00-2e2e 2e30-2e42 3001-3003 3008-3011 3014-301f 3030 303d 30a0 "
    "30fb a4fe-a4ff a60d-a60f a673 a67e a6f2-a6f7 a874-a877 a8ce-a8cf a8f8-a8fa a8fc a92e-a92f a95f a9c1-a9cd "
    "a9de-a9df aa5c-aa5f aade-aadf aaf0-aaf1 abeb fd3e-fd3f fe10-fe19 fe30-fe52 fe54-fe61 fe63 fe68 fe6a-fe6b "
    "ff01-ff03 ff05-ff0a ff0c-ff0f ff1a-ff1b ff1f-ff20 ff3b-ff3d ff3f ff5b ff5d ff5f-ff65 10100-10102 1039f 103d0 "
    "1056f 10857 1091f 1093f 10a50-10a58 10a7f 10af0-10af6 10b39-10b3f 10b99-10b9c 11047-1104d 110bb-110bc "
    "110be-110c1 11140-11143 11174-11175 111c5-111c9 111cd 111db 111dd-111df 11238-1123d 112a9 114c6 115c1-115d7 "
    "11641-11643 1173c-1173e 12470-12474 16a6e-16a6f 16af5 16b37-16b3b 16b44 1bc9f 1da87-1da8b "
)
_MN_RANGES = (
    "300-36f 483-487 591-5bd 5bf 5c1-5c2 5c4-5c5 5c7 610-61a 64b-65f 670 6d6-6dc 6df-6e4 6e7-6e8 6ea-6ed 711 730-74a "
    "7a6-7b0 7eb-7f3 816-819 81b-823 825-827 829-82d 859-85b 8e3-902 93a 93c 941-948 94d 951-957 962-963 981 9bc "
    "9c1-9c4 9cd 9e2-9e3 a01-a02 a3c a41-a42 a47-a48 a4b-a4d a51 a70-a71 a75 a81-a82 abc ac1-ac5 ac7-ac8 acd ae2-ae3 "
    "b01 b3c b3f b41-b44 b4d b56 b62-b63 b82 bc0 bcd c00 c3e-c40 c46-c48 c4a-c4d c55-c56 c62-c63 c81 cbc cbf cc6 ccc- "
    "ccd ce2-ce3 d01 d41-d44 d4d d62-d63 dca dd2-dd4 dd6 e31 e34-e3a e47-e4e eb1 eb4-eb9 ebb-ebc ec8-ecd f18-f19 f35 "
    "f37 f39 f71-f7e f80-f84 f86-f87 f8d-f97 f99-fbc fc6 102d-1030 1032-1037 1039-103a 103d-103e 1058-1059 105e-1060 "
    "1071-1074 1082 1085-1086 108d 109d 135d-135f 1712-1714 1732-1734 1752-1753 1772-1773 17b4-17b5 17b7-17bd 17c6 "
    "17c9-17d3 17dd 180b-180d 18a9 1920-1922 1927-1928 1932 1939-193b 1a17-1a18 1a1b 1a56 1a58-1a5e 1a60 1a62 "
    "1a65-1a6c 1a73-1a7c 1a7f 1ab0-1abd 1b00-1b03 1b34 1b36-1b3a 1b3c 1b42 1b6b-1b73 1b80-1b81 1ba2-1ba5 1ba8-1ba9 "
    "1bab-1bad 1be6 1be8-1be9 1bed 1bef-1bf1 1c2c-1c33 1c36-1c37 1cd0-1cd2 1cd4-1ce0 1ce2-1ce8 1ced 1cf4 1cf8-1cf9 "
    "1dc0-1df5 1dfc-1dff 20d0-20dc 20e1 20e5-20f0 2cef-2cf1 2d7f 2de0-2dff 302a-302d 3099-309a a66f a674-a67d "
    "a69e-a69f a6f0-a6f1 a802 a806 a80b a825-a826 a8c4 a8e0-a8f1 a926-a92d a947-a951 a980-a982 a9b3 a9b6-a9b9 a9bc "
    "a9e5 aa29-aa2e aa31-aa32 aa35-aa36 aa43 aa4c aa7c aab0 aab2-aab4 aab7-aab8 aabe-aabf aac1 aaec-aaed aaf6 abe5 "
    "abe8 abed fb1e fe00-fe0f fe20-fe2f 101fd 102e0 10376-1037a 10a01-10a03 10a05-10a06 10a0c-10a0f 10a38-10a3a 10a3f "
    "10ae5-10ae6 11001 11038-11046 1107f-11081 110b3-110b6 110b9-110ba 11100-11102 11127-1112b 1112d-11134 11173 "
    "11180-11181 111b6-111be 111ca-111cc 1122f-11231 11234 11236-11237 112df 112e3-112ea 11300-11301 1133c 11340 "
    "11366-1136c 11370-11374 114b3-114b8 114ba 114bf-114c0 114c2-114c3 115b2-115b5 115bc-115bd 115bf-115c0 "
    "115dc-115dd 11633-1163a 1163d 1163f-11640 116ab 116ad 116b0-116b5 116b7 1171d-1171f 11722-11725 11727-1172b "
    "16af0-16af4 16b30-16b36 16f8f-16f92 1bc9d-1bc9e 1d167-1d169 1d17b-1d182 1d185-1d18b 1d1aa-1d1ad 1d242-1d244 "
    "1da00-1da36 1da3b-1da6c 1da75 1da84 1da9b-1da9f 1daa1-1daaf 1e8d0-1e8d6 e0100-e01ef "
)


def _parse_ranges(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split():
        a, _, b = item.partition("-")
        out.append((int(a, 16), int(b or a, 16)))
    return out


_CONTROL = _parse_ranges(_CONTROL_RANGES)
_CONTROL_STARTS = [a for a, _ in _CONTROL]
_PUNCT = frozenset(cp for a, b in _parse_ranges(_PUNCT_RANGES) for cp in range(a, b + 1))
_MN = frozenset(cp for a, b in _parse_ranges(_MN_RANGES) for cp in range(a, b + 1))
# Rust lower-cases with newer Unicode data than Python 3.11 has: (first, last, shift) for the letters that differ
_LOWER_FIX = {
    cp: cp + shift
    for a, b, shift in [
        (0x1C89, 0x1C89, 1),
        (0xA7CB, 0xA7CB, -42343),
        (0xA7CC, 0xA7CC, 1),
        (0xA7CE, 0xA7CE, 1),
        (0xA7D2, 0xA7D2, 1),
        (0xA7D4, 0xA7D4, 1),
        (0xA7DA, 0xA7DA, 1),
        (0xA7DC, 0xA7DC, -42561),
        (0x10D50, 0x10D65, 32),
        (0x16EA0, 0x16EB8, 27),
    ]
    for cp in range(a, b + 1)
}
_CJK = [(0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF), (0x2A700, 0x2B81F)]
_CJK += [(0x2B920, 0x2CEAF), (0x2F800, 0x2FA1F)]
# Unicode's White_Space property (what Rust's char::is_whitespace tests)
_UNICODE_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def is_control(ch: str) -> bool:
    """Control and format characters (Cc, Cf, Co): cleaning removes them. Tab, newline and return count as spaces."""
    cp = ord(ch)
    k = bisect.bisect_right(_CONTROL_STARTS, cp) - 1
    return k >= 0 and cp <= _CONTROL[k][1] and ch not in "\t\n\r"


def is_whitespace(ch: str) -> bool:
    """Tab, newline, return and the Unicode White_Space characters that are not control characters."""
    return ch in "\t\n\r" or (ch in _UNICODE_WHITESPACE and not is_control(ch))


def is_punctuation(ch: str) -> bool:
    """ASCII punctuation (so $, +, ^, ` and | count too) and Unicode punctuation (categories P*)."""
    return ord(ch) in _PUNCT


def is_accent(ch: str) -> bool:
    """Nonspacing marks (Mn): what accent stripping drops after NFD splits a letter from its accents."""
    return ord(ch) in _MN


def is_cjk(ch: str) -> bool:
    """The CJK Unified Ideographs blocks BERT surrounds with spaces (not Hiragana, Katakana or Hangul)."""
    cp = ord(ch)
    return any(a <= cp <= b for a, b in _CJK)


class _CleanTable(dict):
    """str.translate table built on demand: controls removed, whitespace to ' ', CJK ideographs padded."""

    def __missing__(self, cp: int):
        ch = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(ch):
            out = None
        elif is_whitespace(ch):
            out = " "
        elif self.cjk and is_cjk(ch):
            out = f" {ch} "
        else:
            out = cp
        self[cp] = out
        return out

    def __init__(self, cjk: bool):
        super().__init__()
        self.cjk = cjk


class _MarkTable(dict):
    """str.translate table that drops nonspacing marks (Mn): the accents NFD splits off."""

    def __missing__(self, cp: int):
        out = None if cp in _MN else cp
        self[cp] = out
        return out


_CLEAN = {True: _CleanTable(cjk=True), False: _CleanTable(cjk=False)}
_MARKS = _MarkTable()

_ASCII_PUNCT = r"!-/:-@\[-`{-~"
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_CLEAN = {i: None for i in [*range(0, 9), 11, 12, *range(14, 32), 127]} | {9: " ", 10: " ", 13: " "}
_ASCII_SPLIT = re.compile(rf"[^\s{_ASCII_PUNCT}]+|[{_ASCII_PUNCT}]")  # a run of word characters, or one mark


@cache
def _unicode_split() -> re.Pattern:
    """One regex for any text: runs of characters that are neither space nor punctuation, or one punctuation mark."""
    cls = "".join(
        re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in _parse_ranges(_PUNCT_RANGES)
    )
    return re.compile(f"[^ {cls}]+|[{cls}]")


def _lower(text: str) -> str:
    """Lower-case one character at a time, as Rust does: Python's str.lower turns a final Σ into ς."""
    if "Σ" in text:
        text = text.replace("Σ", "σ")
    return text.translate(_LOWER_FIX).lower()


def normalize(text: str, lowercase: bool = True, strip_accents: bool | None = None, cjk: bool = True) -> str:
    """BERT's normalizer: clean, pad CJK ideographs, strip accents (NFD, drop Mn), lower-case, in Rust's order."""
    strip = lowercase if strip_accents is None else strip_accents
    if text.isascii():
        text = text.translate(_ASCII_CLEAN)
        return text.lower() if lowercase else text
    text = text.translate(_CLEAN[cjk])
    if strip and not text.isascii():
        text = unicodedata.normalize("NFD", text).translate(_MARKS)
    return _lower(text) if lowercase else text


def basic_tokenize(text: str, lowercase: bool = True, strip_accents: bool | None = None, cjk: bool = True) -> list[str]:
    """Normalize, then split on whitespace and punctuation (each punctuation mark is a word of its own)."""
    text = normalize(text, lowercase, strip_accents, cjk)
    return (_ASCII_SPLIT if text.isascii() else _unicode_split()).findall(text)


def wordpiece(word: str, vocab: dict[str, int] | set[str], unk: str = UNK, max_chars: int = MAX_CHARS_PER_WORD):
    """Greedy longest-match-first: the longest vocabulary prefix, then the longest ``##`` piece, and so on.

    Returns the pieces, or ``[unk]`` when some position has no match or the word is longer than ``max_chars``.
    """
    if len(word) > max_chars:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else PREFIX + word[start:end]
            if piece in vocab:
                break
        else:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


# ---------------------------------------------------------------------------------------------------------------
# The tokenizer


def _text_list(texts, name: str) -> list[str]:
    """A batch as a list of str: bytes, None or numbers would otherwise fail deep inside with an unclear error."""
    if isinstance(texts, (bytes, bytearray)):
        raise TypeError(f"{name} is bytes: decode it first, e.g. data.decode('utf-8')")
    if texts is None or isinstance(texts, dict) or not hasattr(texts, "__iter__"):
        raise TypeError(f"{name} must be a str or a list of str, got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            extra = ": decode it first, e.g. data.decode('utf-8')" if isinstance(t, (bytes, bytearray)) else ""
            raise TypeError(f"{name}[{i}] is {type(t).__name__}, not a str{extra}")
    return texts


def read_vocab(path: str | Path) -> list[str]:
    """One token per line; the line number is the id."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no vocabulary at {path}: a BERT vocab.txt has one token per line")
    tokens = path.read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()  # the final newline
    return [t.rstrip() for t in tokens]


class BertTokenizer:
    """BERT's tokenizer: basic tokenizer + WordPiece, special tokens, pairs, truncation, padding, decoding."""

    def __init__(
        self,
        vocab: Sequence[str] | dict[str, int],
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        max_chars_per_word: int = MAX_CHARS_PER_WORD,
        model_max_length: int = MODEL_MAX_LENGTH,
    ):
        if isinstance(vocab, dict):
            tokens = [None] * (max(vocab.values(), default=-1) + 1)
            for t, i in vocab.items():
                tokens[i] = t
            if any(t is None for t in tokens):
                raise ValueError("vocabulary ids must run 0..n-1 without gaps")
            vocab_list = tokens
        else:
            vocab_list = list(vocab)
        missing = [t for t in SPECIAL_TOKENS if t not in vocab_list]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}; BERT needs all of {SPECIAL_TOKENS}")
        self._tokens: list[str] = vocab_list
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(vocab_list)}  # a later duplicate wins, as in HF
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.handle_chinese_chars = handle_chinese_chars
        self.max_chars_per_word = max_chars_per_word
        self.model_max_length = model_max_length
        self.pad_token_id, self.unk_token_id, self.cls_token_id, self.sep_token_id, self.mask_token_id = (
            self.vocab[t] for t in SPECIAL_TOKENS
        )
        self.all_special_ids = frozenset(self.vocab[t] for t in SPECIAL_TOKENS)
        self._max_piece = max(len(t) for t in self.vocab)  # no piece is longer: bounds the greedy search
        self._cache: dict[str, tuple[int, ...]] = {}

    # -- loading and saving

    @classmethod
    def from_vocab_file(cls, path: str | Path, lowercase: bool = True, **kwargs) -> BertTokenizer:
        return cls(read_vocab(path), lowercase=lowercase, **kwargs)

    @classmethod
    def from_pretrained(cls, folder: str | Path, **kwargs) -> BertTokenizer:
        """A folder with vocab.txt (and optionally tokenizer_config.json, read for casing and length)."""
        folder = Path(folder)
        if not (folder / "vocab.txt").is_file():
            raise FileNotFoundError(f"{folder} has no vocab.txt; pass a folder saved by a BERT tokenizer")
        options = {}
        config = folder / "tokenizer_config.json"
        if config.is_file():
            c = json.loads(config.read_text(encoding="utf-8"))
            for key, name in [
                ("do_lower_case", "lowercase"),
                ("strip_accents", "strip_accents"),
                ("tokenize_chinese_chars", "handle_chinese_chars"),
                ("model_max_length", "model_max_length"),
            ]:
                if key in c and (key != "model_max_length" or c[key] < 1e9):  # HF writes 1e30 for "no limit"
                    options[name] = c[key]
        options.update(kwargs)
        return cls(read_vocab(folder / "vocab.txt"), **options)

    def save(self, folder: str | Path) -> Path:
        """Write vocab.txt and tokenizer_config.json (readable by transformers' BertTokenizer too)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        vocab_text = "".join(t + "\n" for t in self._tokens)
        atomic_write(folder / "vocab.txt", lambda tmp: Path(tmp).write_text(vocab_text, encoding="utf-8"))
        config = {
            "tokenizer_class": "BertTokenizer",
            "do_lower_case": self.lowercase,
            "strip_accents": self.strip_accents,
            "tokenize_chinese_chars": self.handle_chinese_chars,
            "model_max_length": self.model_max_length,
            **dict(zip(["pad_token", "unk_token", "cls_token", "sep_token", "mask_token"], SPECIAL_TOKENS)),
        }
        text = json.dumps(config, indent=2)
        atomic_write(folder / "tokenizer_config.json", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return folder

    # -- sizes and lookups

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"BertTokenizer(vocab_size={self.vocab_size}, lowercase={self.lowercase})"

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]):
        if isinstance(tokens, str):
            return self.vocab.get(tokens, self.unk_token_id)
        return [self.vocab.get(t, self.unk_token_id) for t in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]):
        if isinstance(ids, int) or (hasattr(ids, "ndim") and ids.ndim == 0):
            return self._tokens[self._check_id(int(ids))]
        return [self._tokens[self._check_id(int(i))] for i in ids]

    def _check_id(self, i: int) -> int:
        if not 0 <= i < len(self._tokens):
            raise IndexError(f"token id {i} is outside the vocabulary (0..{len(self._tokens) - 1})")
        return i

    # -- text to tokens

    def basic_tokenize(self, text: str) -> list[str]:
        return basic_tokenize(text, self.lowercase, self.strip_accents, self.handle_chinese_chars)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """WordPiece for one word, as ids (cached by the caller)."""
        if len(word) > self.max_chars_per_word:
            return (self.unk_token_id,)
        vocab, ids, start, n = self.vocab, [], 0, len(word)
        while start < n:
            for end in range(min(n, start + self._max_piece), start, -1):
                i = vocab.get(word[start:end] if start == 0 else PREFIX + word[start:end])
                if i is not None:
                    break
            else:
                return (self.unk_token_id,)
            ids.append(i)
            start = end
        return tuple(ids)

    def _encode_text(self, text: str) -> list[int]:
        """Ids of one text, no special tokens added; special tokens written in the text (``[MASK]``) are kept whole."""
        if not isinstance(text, str):
            raise TypeError(f"expected a str to tokenize, got {type(text).__name__}")
        if "[" in text:
            parts = _SPECIAL_SPLIT.split(text)  # [text, special, text, special, ..., text]
            if len(parts) > 1:
                ids = []
                for k, part in enumerate(parts):
                    if k % 2:
                        ids.append(self.vocab[part])
                    elif part:
                        ids += self._encode_plain(part)
                return ids
        return self._encode_plain(text)

    def _encode_plain(self, text: str) -> list[int]:
        """Ids of text without special tokens in it: the hot path."""
        if self.lowercase and text.isascii():  # fast path: most text in the course
            if _ASCII_CONTROL.search(text):
                text = text.translate(_ASCII_CLEAN)
            words = _ASCII_SPLIT.findall(text.lower())
        else:
            words = self.basic_tokenize(text)
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        get, ids = cache.get, []
        for w in words:
            piece_ids = get(w)
            if piece_ids is None:
                piece_ids = cache[w] = self._word_ids(w)
            ids += piece_ids
        return ids

    def tokenize(self, text: str) -> list[str]:
        """WordPiece tokens of ``text``, without special tokens."""
        tokens = self._tokens
        return [tokens[i] for i in self._encode_text(text)]

    def encode(
        self,
        text: str,
        pair: str | None = None,
        add_special_tokens: bool = True,
        truncation: bool = False,
        max_length: int | None = None,
    ) -> list[int]:
        """Ids of ``text`` (and ``pair``): ``[CLS] text [SEP] pair [SEP]`` with special tokens."""
        if not isinstance(text, str):
            hint = "; for a batch of texts call the tokenizer itself" if isinstance(text, (list, tuple)) else ""
            hint = ": decode it first, e.g. data.decode('utf-8')" if isinstance(text, (bytes, bytearray)) else hint
            raise TypeError(f"encode takes one text (a str), got {type(text).__name__}{hint}")
        return self._encode_one(text, pair, add_special_tokens, truncation, max_length)[0]

    def _encode_one(self, text, pair, add_special_tokens, truncation, max_length) -> tuple[list[int], list[int]]:
        """(input_ids, token_type_ids)."""
        a = self._encode_text(text)
        b = None if pair is None else self._encode_text(pair)
        if truncation:
            limit = self.model_max_length if max_length is None else max_length
            a, b = truncate(a, b, limit - (0 if not add_special_tokens else 2 if b is None else 3))
        if add_special_tokens:
            a = [self.cls_token_id, *a, self.sep_token_id]
            if b is not None:
                b = [*b, self.sep_token_id]
        if b is None:
            return a, [0] * len(a)
        return a + b, [0] * len(a) + [1] * len(b)

    def __call__(
        self,
        texts: str | Sequence[str],
        pairs: str | Sequence[str] | None = None,
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = MODEL_MAX_LENGTH,
        return_tensors: str | None = "pt",
        add_special_tokens: bool = True,
    ) -> dict:
        """Encode a batch: input_ids, token_type_ids, attention_mask as (B, T) torch.long tensors (or lists).

        padding: True or "longest" pads to the longest sequence, "max_length" to ``max_length``, False not at all.
        """
        if isinstance(texts, str):
            texts = [texts]
            pairs = None if pairs is None else [pairs] if isinstance(pairs, str) else pairs
        texts = _text_list(texts, "texts")
        pairs = None if pairs is None else _text_list(pairs, "pairs")
        if not texts:
            raise ValueError("got an empty list of texts: pass at least one text (an empty string is fine)")
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} pairs; pass one pair per text")
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise ValueError(f"padding={padding!r}: use True/'longest', 'max_length' or False")
        encoded = [
            self._encode_one(t, None if pairs is None else pairs[i], add_special_tokens, truncation, max_length)
            for i, t in enumerate(texts)
        ]
        ids = [e[0] for e in encoded]
        types = [e[1] for e in encoded]
        mask = [[1] * len(e) for e in ids]
        if padding and padding != "do_not_pad":
            if padding == "max_length":
                if max_length is None:
                    raise ValueError("padding='max_length' needs max_length")
                width = max(max_length, *(len(x) for x in ids))
            else:
                width = max((len(x) for x in ids), default=0)
            pad = self.pad_token_id
            ids = [x + [pad] * (width - len(x)) for x in ids]
            types = [x + [0] * (width - len(x)) for x in types]
            mask = [x + [0] * (width - len(x)) for x in mask]
        batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        if return_tensors is None:
            return batch
        if return_tensors not in ("pt", "np"):
            raise ValueError(f"return_tensors={return_tensors!r}: use 'pt', 'np' or None")
        if len({len(x) for x in ids}) > 1:
            raise ValueError("sequences have different lengths: pass padding=True to make a tensor")
        if return_tensors == "np":
            import numpy as np

            return {k: np.asarray(v, dtype=np.int64).reshape(len(v), -1) for k, v in batch.items()}
        import torch

        return {k: torch.tensor(v, dtype=torch.long).reshape(len(v), -1) for k, v in batch.items()}

    # -- ids to text

    def decode(self, ids, skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = True) -> str:
        """Join the pieces: ``##`` pieces glue to the previous one, others get a space.

        clean_up_tokenization_spaces (as in Hugging Face's decoder) removes the space before . ? ! , and before
        English contractions ('s, n't, 'm, 've, 're): "it ' s fine ." -> "it's fine.".
        """
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        if isinstance(ids, int):
            ids = [ids]
        if ids and isinstance(ids[0], list):
            raise ValueError("decode takes one sequence of ids; use batch_decode for a batch")
        tokens = self.convert_ids_to_tokens(ids)
        if skip_special_tokens:
            tokens = [t for t, i in zip(tokens, ids) if i not in self.all_special_ids]
        parts = []
        for k, t in enumerate(tokens):
            if k:
                t = t[len(PREFIX) :] if t.startswith(PREFIX) else " " + t
            parts.append(_cleanup(t) if clean_up_tokenization_spaces else t)
        return "".join(parts)

    def batch_decode(self, batch, **kwargs) -> list[str]:
        if hasattr(batch, "tolist"):
            batch = batch.tolist()
        return [self.decode(ids, **kwargs) for ids in batch]


_CLEANUPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m")]
_CLEANUPS += [(" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def _cleanup(piece: str) -> str:
    for a, b in _CLEANUPS:
        piece = piece.replace(a, b)
    return piece


def truncate(a: list[int], b: list[int] | None, budget: int) -> tuple[list[int], list[int] | None]:
    """Cut to at most ``budget`` tokens, longest first: the shorter keeps up to half, the longer takes the rest.

    This is the arithmetic of the Rust tokenizers (an odd budget gives the spare token to the longer text).
    """
    if budget < 0:
        raise ValueError("max_length is too short to hold the special tokens; raise max_length")
    if b is None:
        return a[:budget], None
    n1, n2 = len(a), len(b)
    if n1 + n2 <= budget:
        return a, b
    swap = n1 > n2
    if swap:
        n1, n2 = n2, n1
    n2 = n1 if n1 > budget else max(n1, budget - n1)
    if n1 + n2 > budget:
        n1 = budget // 2
        n2 = n1 + budget % 2
    if swap:
        n1, n2 = n2, n1
    return a[:n1], b[:n2]


# ---------------------------------------------------------------------------------------------------------------
# Training a WordPiece vocabulary


def _alphabet_vocab(words: dict[str, int], special_tokens: Sequence[str]) -> list[str]:
    """Special tokens, then every character seen at the start of a word, then every ``##`` continuation."""
    first, rest = set(), set()
    for w in words:
        first.add(w[0])
        rest.update(w[1:])
    vocab = list(special_tokens)
    vocab += sorted(first - set(vocab))
    vocab += sorted(PREFIX + c for c in rest if PREFIX + c not in set(vocab))
    return vocab


def train_wordpiece(
    lines: Iterable[str],
    vocab_size: int,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    min_pair_count: int = 1,
    scoring: str = "likelihood",
    progress: bool = False,
) -> BertTokenizer:
    """Learn a WordPiece vocabulary of ``vocab_size`` tokens from ``lines``.

    Start from the characters; repeatedly merge the adjacent pair with the best score and add it to the vocabulary.
    WordPiece's score is ``count(ab) / (count(a) * count(b))``: how much more often a and b occur together than
    chance predicts, which is how much merging them raises the corpus likelihood under a unigram model.
    ``scoring="frequency"`` merges the most frequent pair instead (BPE's rule, which the ``tokenizers`` trainer uses).
    """
    if scoring not in ("likelihood", "ratio", "frequency"):
        raise ValueError(f"scoring={scoring!r}: use 'likelihood', 'ratio' or 'frequency'")
    word_counts: Counter[str] = Counter()
    for line in lines:
        word_counts.update(basic_tokenize(line, lowercase, strip_accents))
    vocab = _alphabet_vocab(word_counts, special_tokens)
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the alphabet and special tokens ({len(vocab)})")
    merges = _learn_merges(word_counts, vocab, vocab_size, min_pair_count, scoring, progress)
    vocab += merges
    return BertTokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)


def _learn_merges(
    word_counts: dict[str, int], vocab: list[str], vocab_size: int, min_pair_count: int, scoring: str, progress: bool
) -> list[str]:
    """The merge loop on integer ids with incremental pair counts and a lazy max-heap.

    Merging (a, b) changes the counts of the pairs around each occurrence and, for the likelihood and ratio scores,
    the score of every pair that contains a or b, since count(a) and count(b) drop. Each pair whose score changes is
    pushed again; an entry whose score is no longer the pair's current one is dropped when popped.
    """
    ids = {t: i for i, t in enumerate(vocab)}
    names = list(vocab)
    words = [[ids[w[0]], *(ids[PREFIX + c] for c in w[1:])] for w in word_counts]
    counts = list(word_counts.values())
    token_count = [0] * len(names)  # how often each token occurs in the current segmentation
    pair_count: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> words it occurs in
    partners: dict[int, set[tuple[int, int]]] = {}  # token -> pairs that contain it
    for k, (w, c) in enumerate(zip(words, counts)):
        for t in w:
            token_count[t] += c
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + c
            where.setdefault(p, set()).add(k)
    for a, b in pair_count:
        partners.setdefault(a, set()).add((a, b))
        partners.setdefault(b, set()).add((a, b))

    log = math.log
    log_total = log(sum(token_count))
    log_count = [log(n) if n else 0.0 for n in token_count]

    def score(p: tuple[int, int]) -> float:
        n = pair_count[p]
        if scoring == "likelihood":  # n * log(n * N / (count(a) * count(b))): count times PMI
            return n * (log(n) + log_total - log_count[p[0]] - log_count[p[1]])
        if scoring == "ratio":
            return n / (token_count[p[0]] * token_count[p[1]])
        return float(n)

    heap = [(-score(p), p) for p in pair_count]
    heapq.heapify(heap)
    merges: list[str] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=vocab_size - len(names), desc="merges")
    while len(names) < vocab_size and heap:
        neg, p = heapq.heappop(heap)
        if p not in pair_count or -neg != score(p):
            continue  # stale: a fresher entry for this pair was pushed when its score changed
        if pair_count[p] < min_pair_count:
            break
        a, b = p
        name = names[a] + (names[b][len(PREFIX) :] if names[b].startswith(PREFIX) else names[b])
        new = len(names)
        names.append(name)
        token_count.append(0)
        merges.append(name)
        touched: set[tuple[int, int]] = set()
        for k in where.pop(p):
            w, c = words[k], counts[k]
            merged, i, n = [], 0, len(w)
            while i < n:
                if w[i] == a and i + 1 < n and w[i + 1] == b:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(w[i])
                    i += 1
            if len(merged) == n:
                continue  # the pair left this word in an earlier merge
            times = n - len(merged)
            token_count[a] -= c * times
            token_count[b] -= c * times
            token_count[new] += c * times
            for q in zip(w, w[1:]):
                pair_count[q] -= c
                touched.add(q)
            for q in zip(merged, merged[1:]):
                pair_count[q] = pair_count.get(q, 0) + c
                where.setdefault(q, set()).add(k)
                touched.add(q)
            words[k] = merged
        log_count.append(0.0)
        for t in (a, b, new):
            log_count[t] = log(token_count[t]) if token_count[t] > 0 else 0.0
        for q in touched:
            if pair_count[q] <= 0:
                del pair_count[q]
                where.pop(q, None)
            else:
                partners.setdefault(q[0], set()).add(q)
                partners.setdefault(q[1], set()).add(q)
        if scoring != "frequency":  # every pair holding a or b scores differently now that a and b are rarer
            for t in (a, b):
                held = partners.get(t)
                if held:
                    held.difference_update([q for q in held if q not in pair_count])
                    touched |= held
        for q in touched:
            if q in pair_count:
                heapq.heappush(heap, (-score(q), q))
        if len(heap) > 4 * len(pair_count) + 100_000:  # drop the stale entries now and then
            heap = [(-score(q), q) for q in pair_count]
            heapq.heapify(heap)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


# ---------------------------------------------------------------------------------------------------------------
# One training step, written plainly (the notebook's version; ``train_wordpiece`` does the same incrementally)


def split_words(word_counts: dict[str, int]) -> dict[str, list[str]]:
    """Each word as its characters, continuations marked: 'hug' -> ['h', '##u', '##g']."""
    return {w: [w[0], *(PREFIX + c for c in w[1:])] for w in word_counts}


def pair_scores(
    splits: dict[str, list[str]], word_counts: dict[str, int], total: int | None = None, scoring: str = "likelihood"
) -> dict[tuple[str, str], float]:
    """Score every adjacent pair of the current segmentation.

    likelihood: ``n_ab * log(n_ab * N / (n_a * n_b))``, with N the number of symbols before any merge (``total``;
    by default the current number); ratio: ``n_ab / (n_a * n_b)``; frequency: ``n_ab``.
    """
    token_count: Counter[str] = Counter()
    pair_count: Counter[tuple[str, str]] = Counter()
    for w, pieces in splits.items():
        c = word_counts[w]
        for t in pieces:
            token_count[t] += c
        for p in zip(pieces, pieces[1:]):
            pair_count[p] += c
    log_total = math.log(total if total is not None else sum(token_count.values()))
    scores = {}
    for (a, b), n in pair_count.items():
        if scoring == "likelihood":
            scores[a, b] = n * (math.log(n) + log_total - math.log(token_count[a]) - math.log(token_count[b]))
        elif scoring == "ratio":
            scores[a, b] = n / (token_count[a] * token_count[b])
        else:
            scores[a, b] = float(n)
    return scores


def merge_pair(splits: dict[str, list[str]], a: str, b: str) -> dict[str, list[str]]:
    """Replace every adjacent (a, b), left to right, by the merged token (``##`` of b dropped)."""
    merged_token = a + (b[len(PREFIX) :] if b.startswith(PREFIX) else b)
    out = {}
    for w, pieces in splits.items():
        new, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b:
                new.append(merged_token)
                i += 2
            else:
                new.append(pieces[i])
                i += 1
        out[w] = new
    return out
