"""Byte-level BPE, the tokenizer of GPT-2, RoBERTa, ModernBERT and EuroBERT.

Text is first cut into pieces by GPT-2's regex (contractions, runs of letters, of digits, of other symbols, each with
the space before it). Each piece becomes its UTF-8 bytes, each byte a printable character (``bytes_to_unicode``), so
the base vocabulary is exactly 256 symbols and nothing is ever unknown. Training merges the most frequent adjacent
pair again and again; encoding replays the merges in the order they were learned.

``ByteLevelBPE.from_tokenizer_json`` reads a ``tokenizers`` JSON file; ``train_bpe`` (in ``train.py``) learns the
merges ``tokenizers``' trainer learns, in the same order.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

_CACHE_LIMIT = 1 << 20


@cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 byte values to printable characters.

    Printable Latin-1 bytes map to themselves; the others (controls, space, ...) to the characters from U+0100 on,
    so a space becomes 'Ġ' and a newline 'Ċ'. BPE then works on ordinary strings with no invisible characters.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping, extra = {}, 0
    for b in range(256):
        if b in keep:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


# Unicode's White_Space property: what \s means in the Oniguruma regex engine of `tokenizers`
_WHITESPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


# Letters and digits that `tokenizers` (Unicode 16) knows and Python 3.11's unicodedata (Unicode 14) does not yet
_NEWER_LETTERS = (
    "1c89-1c8a a7cb-a7cd a7da-a7dc 105c0-105f3 10d4a-10d65 10d6f-10d85 10ec2-10ec4 1123f-11240 11380-11389 1138b "
    "1138e 11390-113b5 113b7 113d1 113d3 11bc0-11be0 11f02 11f04-11f10 11f12-11f33 1342f 13441-13446 13460-143fa "
    "16100-1611d 16d40-16d6c 18cff 1b132 1b155 1df25-1df2a 1e030-1e06d 1e4d0-1e4eb 1e5d0-1e5ed 1e5f0 2b739 "
    "2ebf0-2ee5d 31350-323af"
)
_NEWER_NUMBERS = (
    "10d40-10d49 116d0-116e3 11bf0-11bf9 11f50-11f59 16130-16139 16d70-16d79 1ccf0-1ccf9 1d2c0-1d2d3 1e4f0-1e4f9 "
    "1e5f1-1e5fa"
)


def _category_class(first_letter: str, newer: str) -> str:
    """A regex character class body: every code point whose Unicode category starts with ``first_letter``."""
    cps = {cp for cp in range(0x110000) if unicodedata.category(chr(cp))[0] == first_letter}
    for item in newer.split():
        a, _, b = item.partition("-")
        cps.update(range(int(a, 16), int(b or a, 16) + 1))
    ranges, start, prev = [], None, None
    for cp in [*sorted(cps), None]:
        if start is not None and (cp is None or cp != prev + 1):
            ranges.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
            start = None
        if start is None:
            start = cp
        prev = cp
    return "".join(ranges)


@cache
def gpt2_pattern() -> re.Pattern:
    r"""GPT-2's pre-tokenizer: ``'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+``.

    Python's ``re`` has no \p{L}: the letter and number classes are built from unicodedata once (about 0.5 s).
    """
    L, N, S = _category_class("L", _NEWER_LETTERS), _category_class("N", _NEWER_NUMBERS), _WHITESPACE
    return re.compile(rf"'s|'t|'re|'ve|'m|'ll|'d| ?[{L}]+| ?[{N}]+| ?[^{S}{L}{N}]+|[{S}]+(?![^{S}])|[{S}]+")


def pre_tokenize(text: str, add_prefix_space: bool = False) -> list[str]:
    """Split with GPT-2's regex and map every piece to byte characters: 'Hello world' -> ['Hello', 'Ġworld']."""
    if add_prefix_space and not text.startswith(" "):
        text = " " + text
    table = _BYTE_TABLE
    return [piece.encode("utf-8").decode("latin-1").translate(table) for piece in gpt2_pattern().findall(text)]


_BYTE_TABLE = {b: c for b, c in bytes_to_unicode().items()}  # latin-1 code point == byte value
_BYTE_DECODER = {c: b for b, c in bytes_to_unicode().items()}


class ByteLevelBPE:
    """A byte-level BPE tokenizer: vocabulary, ranked merges, optional special tokens wrapped around each text."""

    def __init__(
        self,
        vocab: dict[str, int],
        merges: Sequence[tuple[str, str]],
        add_prefix_space: bool = False,
        special_tokens: Sequence[str] = (),
        template: tuple[Sequence[str], Sequence[str]] = ((), ()),
        strip_around: dict[str, tuple[bool, bool]] | None = None,
        nfc: bool = False,
        ignore_merges: bool = False,
    ):
        """``strip_around``: special token -> (lstrip, rstrip), whether it swallows the spaces before/after it.
        ``nfc``: compose the text (Unicode NFC) first. ``ignore_merges``: a pre-token that is itself in the
        vocabulary is one token, whatever the merges say (Llama 3's rule).
        """
        missing = [c for c in bytes_to_unicode().values() if c not in vocab]
        if missing:
            raise ValueError(f"a byte-level vocabulary needs all 256 byte symbols; {len(missing)} are missing")
        self.vocab = dict(vocab)
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self.merges = [tuple(m) for m in merges]
        self.ranks = {m: r for r, m in enumerate(self.merges)}
        for a, b in self.merges:
            if a + b not in self.vocab:
                raise ValueError(f"merge {a!r} + {b!r} makes {a + b!r}, which is not in the vocabulary")
        self.add_prefix_space = add_prefix_space
        self.nfc, self.ignore_merges = nfc, ignore_merges
        for t in [*special_tokens, *template[0], *template[1]]:
            if t not in self.vocab:
                raise ValueError(f"special token {t!r} is not in the vocabulary")
        self.special_tokens = list(special_tokens)
        self.template = (list(template[0]), list(template[1]))  # tokens before and after the text
        self._special_split = None
        if special_tokens:
            strip_around = strip_around or {}
            alternatives = []
            for t in sorted(special_tokens, key=len, reverse=True):  # longest first, as `tokenizers` matches
                lstrip, rstrip = strip_around.get(t, (False, False))
                alternatives.append((r"\s*" if lstrip else "") + re.escape(t) + (r"\s*" if rstrip else ""))
            self._special_split = re.compile("(" + "|".join(alternatives) + ")")
        self._cache: dict[str, tuple[int, ...]] = {}

    @classmethod
    def from_tokenizer_json(cls, path_or_dict: str | Path | dict) -> ByteLevelBPE:
        """Load a ``tokenizers`` JSON file (tokenizer.json) holding a byte-level BPE."""
        d = path_or_dict
        if not isinstance(d, dict):
            path = Path(d)
            if path.is_dir():
                path = path / "tokenizer.json"
            if not path.is_file():
                raise FileNotFoundError(f"no tokenizer JSON at {path}")
            d = json.loads(path.read_text(encoding="utf-8"))
        model = d.get("model", {})
        if model.get("type") != "BPE":
            raise ValueError(f"expected a BPE model, got {model.get('type')!r}")
        pre = d.get("pre_tokenizer") or {}
        if pre.get("type") == "Sequence":  # some files wrap the ByteLevel step in a one-element Sequence
            steps = pre.get("pretokenizers", [])
            pre = steps[0] if len(steps) == 1 else {"type": "Sequence"}
        if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
            raise ValueError(f"expected a ByteLevel pre-tokenizer with GPT-2's regex, got {pre}")
        if d.get("normalizer") not in (None, {"type": "NFC"}):
            raise ValueError(f"unsupported normalizer {d['normalizer']}; only none or NFC")
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model.get("merges", [])]
        added = d.get("added_tokens", [])
        vocab = {**model["vocab"], **{t["content"]: t["id"] for t in added}}
        specials = [t["content"] for t in added]
        strip_around = {t["content"]: (t.get("lstrip", False), t.get("rstrip", False)) for t in added}
        template = ((), ())
        post = d.get("post_processor") or {}
        if post.get("type") == "TemplateProcessing":
            single = post["single"]
            k = next(i for i, p in enumerate(single) if "Sequence" in p)
            template = tuple([p["SpecialToken"]["id"] for p in part] for part in (single[:k], single[k + 1 :]))
        elif post.get("type") not in (None, "ByteLevel"):
            raise ValueError(f"unsupported post-processor {post.get('type')!r}")
        nfc = d.get("normalizer") == {"type": "NFC"}
        ignore_merges = bool(model.get("ignore_merges", False))
        add_prefix_space = pre.get("add_prefix_space", False)
        return cls(vocab, merges, add_prefix_space, specials, template, strip_around, nfc, ignore_merges)

    def to_tokenizer_json(self) -> dict:
        """The same tokenizer as a ``tokenizers`` JSON dict (``tokenizers.Tokenizer.from_str(json.dumps(...))``)."""
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {
                    "id": self.vocab[t],
                    "content": t,
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": False,
                    "special": True,
                }
                for t in self.special_tokens
            ],
            "normalizer": {"type": "NFC"} if self.nfc else None,
            "pre_tokenizer": {
                "type": "ByteLevel",
                "add_prefix_space": self.add_prefix_space,
                "trim_offsets": True,
                "use_regex": True,
            },
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": None,
                "end_of_word_suffix": None,
                "fuse_unk": False,
                "byte_fallback": False,
                "ignore_merges": self.ignore_merges,
                "vocab": self.vocab,
                "merges": [list(m) for m in self.merges],
            },
        }

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"ByteLevelBPE(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    def bpe(self, piece: str) -> list[str]:
        """Apply the merges to one pre-token: always the lowest-ranked (earliest learned) pair first."""
        symbols = list(piece)
        ranks = self.ranks
        while len(symbols) > 1:
            best, best_rank = None, None
            for i in range(len(symbols) - 1):
                r = ranks.get((symbols[i], symbols[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            a, b = symbols[best], symbols[best + 1]
            merged, i = [], 0
            while i < len(symbols):  # merge every occurrence of (a, b), left to right
                if i < len(symbols) - 1 and symbols[i] == a and symbols[i + 1] == b:
                    merged.append(a + b)
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def _encode_plain(self, text: str) -> list[int]:
        cache, vocab, ids = self._cache, self.vocab, []
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        for piece in pre_tokenize(unicodedata.normalize("NFC", text) if self.nfc else text, self.add_prefix_space):
            piece_ids = cache.get(piece)
            if piece_ids is None:
                if self.ignore_merges and piece in vocab:
                    piece_ids = cache[piece] = (vocab[piece],)
                else:
                    piece_ids = cache[piece] = tuple(vocab[s] for s in self.bpe(piece))
            ids += piece_ids
        return ids

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Ids of ``text``; special tokens written in the text stay whole."""
        if not isinstance(text, str):
            raise TypeError(f"expected a str to tokenize, got {type(text).__name__}")
        ids = []
        parts = self._special_split.split(text) if self._special_split else [text]
        for k, part in enumerate(parts):
            if k % 2:
                ids.append(self.vocab[part.strip()])
            elif part:
                ids += self._encode_plain(part)
        if add_special_tokens:
            before, after = self.template
            ids = [self.vocab[t] for t in before] + ids + [self.vocab[t] for t in after]
        return ids

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_token[i] for i in self.encode(text, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Byte symbols back to bytes, bytes back to text (invalid UTF-8 becomes U+FFFD, as in `tokenizers`)."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        specials = {self.vocab[t] for t in self.special_tokens}
        out, buffer = [], []
        for i in ids:
            if i not in self.id_to_token:
                raise IndexError(f"token id {i} is not in the vocabulary")
            if i in specials:
                if not skip_special_tokens:
                    out.append(bytes(buffer).decode("utf-8", errors="replace"))
                    out.append(self.id_to_token[i])
                    buffer = []
                continue
            buffer += [_BYTE_DECODER[c] for c in self.id_to_token[i]]
        out.append(bytes(buffer).decode("utf-8", errors="replace"))
        return "".join(out)
