"""BERT's WordPiece tokenizer, token for token equal to Hugging Face's.

Two steps turn text into ids. The *basic tokenizer* (``normalize.py``) cleans the text, lower-cases it and strips
accents for uncased vocabularies, and splits it on whitespace and punctuation. *WordPiece* cuts each word greedily
into the longest vocabulary pieces, continuations marked ``##``; a word with no cut, or longer than 100 characters,
becomes ``[UNK]``. ``BertTokenizer`` adds the special tokens, pairs of texts, truncation ("longest first", by the
Rust tokenizers' own arithmetic), padding and decoding. Speed comes from the basic tokenizer's ASCII fast path and
a per-word cache (text is Zipfian: most words repeat).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write
from .normalize import _ASCII_CLEAN, _ASCII_CONTROL, _ASCII_SPLIT, basic_tokenize

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
PREFIX = "##"  # marks a piece that continues a word
MAX_CHARS_PER_WORD = 100  # Hugging Face's limit (Google's original BERT used 200)
MODEL_MAX_LENGTH = 512
_SPECIAL_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
_CACHE_LIMIT = 1 << 20  # words kept in the per-word cache before it is emptied


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
            return {k: np.asarray(v, dtype=np.int64).reshape(len(v), -1) for k, v in batch.items()}
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
