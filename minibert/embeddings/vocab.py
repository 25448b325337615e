"""The words word2vec reads: lower-cased word tokens of the Wikipedia excerpt, and the vocabulary with counts."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from ..text.corpus import wikipedia_lines

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")  # letters and digits, with inner apostrophes and hyphens


def tokenize(text: str) -> list[str]:
    """Lower-cased words: ``"Rock'n'roll, since 1950!"`` -> ``["rock'n'roll", 'since', '1950']``."""
    return _WORD.findall(text.lower())


def wikipedia_sentences(lang: str = "en") -> list[list[str]]:
    """The Wikipedia excerpt as word2vec trains on it: one list of words per paragraph."""
    return [words for words in map(tokenize, wikipedia_lines(lang)) if words]


class Vocab:
    """The words seen at least ``min_count`` times, most frequent first, with their counts."""

    def __init__(self, words: Sequence[str], counts: Sequence[int]):
        if len(words) != len(counts):
            raise ValueError(f"{len(words)} words but {len(counts)} counts")
        self.words = list(words)
        self.counts = torch.as_tensor(list(counts), dtype=torch.long)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("the vocabulary has duplicate words")

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
        counts = Counter(w for sentence in sentences for w in _words(sentence))
        kept = [(w, c) for w, c in counts.items() if c >= min_count]  # Counter keeps first-seen order for ties
        if not kept:
            raise ValueError(
                f"no word occurs {min_count} times or more ({len(counts)} distinct words seen); "
                "lower min_count or train on more text"
            )
        kept.sort(key=lambda wc: -wc[1])
        return cls([w for w, _ in kept], [c for _, c in kept])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, sentences: Iterable[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids, sentence_ids): one long tensor of the known words, and the sentence each came from.

        Unknown words are dropped before windows are drawn, as gensim does, so a window reaches past them.
        """
        ids, sentence_ids, get = [], [], self.index.get
        for s, sentence in enumerate(sentences):
            known = [i for i in map(get, _words(sentence)) if i is not None]
            ids.extend(known)
            sentence_ids.extend([s] * len(known))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(sentence_ids, dtype=torch.long)

    def keep_probabilities(self, sample: float) -> torch.Tensor:
        """P(keep) per word for frequent-word subsampling: (sqrt(f / t) + 1) * t / f, at most 1 (word2vec.c).

        f is a word's share of the corpus and t is ``sample``: words rarer than t are always kept, a word 100x
        more frequent than t is kept about 11% of the time. ``sample=0`` keeps everything.
        """
        if sample <= 0:
            return torch.ones(len(self))
        f = self.counts.double() / self.counts.sum()
        return ((f / sample).sqrt() + 1).mul(sample / f).clamp(max=1).float()

    def noise_distribution(self, exponent: float = 0.75) -> torch.Tensor:
        """The distribution negatives are drawn from: count^0.75, normalised (flatter than the unigram)."""
        p = self.counts.double().pow(exponent)
        return (p / p.sum()).float()


def _words(sentence: Sequence[str]) -> Sequence[str]:
    if isinstance(sentence, str):
        raise TypeError("a sentence must be a list of words, not a string; split it first, e.g. with tokenize(text)")
    return sentence
