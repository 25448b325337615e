"""BERT's basic tokenizer: clean and normalize the text, then split it into words (chapter 03).

The basic tokenizer cleans the text (control characters out, every kind of whitespace to a space, spaces around CJK
ideographs), lower-cases it and strips accents for uncased vocabularies, then splits it on whitespace and
punctuation. WordPiece (``wordpiece.py``) then cuts each word into vocabulary pieces.

The rules follow the Rust ``tokenizers`` library (what ``transformers`` runs today) character for character:
it strips accents *before* lower-casing, lower-cases one character at a time (no final sigma), removes vertical
tab and form feed as control characters, and classifies characters with its own Unicode tables, stored below.
Speed comes from an ASCII fast path and one compiled regex for the split.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from functools import cache

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
