"""word2vec's benchmarks (wordsim353, simlex999, Google analogies), counted the way gensim counts so the figures
compare: a pair or analogy with a word outside the vocabulary is skipped, and its share is reported.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from ..text.corpus import gensim_datapath
from .vectors import KeyedVectors

BENCHMARKS = {"wordsim353": "wordsim353.tsv", "simlex999": "simlex999.txt", "analogies": "questions-words.txt"}


@dataclass(frozen=True)
class PairScore:
    spearman: float  # rank correlation of the model's cosine similarities with human judgements
    pearson: float
    pairs: int  # pairs scored
    oov: int  # pairs skipped: a word is not in the vocabulary

    @property
    def oov_ratio(self) -> float:
        """Percent of pairs skipped, as gensim reports it."""
        return 100.0 * self.oov / max(1, self.pairs + self.oov)


@dataclass(frozen=True)
class AnalogyScore:
    correct: int
    total: int  # analogies answered (all four words known)
    oov: int  # analogies skipped
    sections: dict[str, tuple[int, int]]  # section -> (correct, answered)

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def oov_ratio(self) -> float:
        return 100.0 * self.oov / max(1, self.total + self.oov)


def benchmark_path(name_or_path: str | os.PathLike) -> str:
    if str(name_or_path) in BENCHMARKS:
        return gensim_datapath(BENCHMARKS[str(name_or_path)])
    if not os.path.isfile(name_or_path):
        raise FileNotFoundError(f"no file at {name_or_path}; use a path or one of {sorted(BENCHMARKS)}")
    return str(name_or_path)


def _upper_vocab(kv: KeyedVectors, restrict_vocab: int) -> dict[str, int]:
    """Case-insensitive lookup as gensim does it: upper-cased words, the most frequent spelling wins."""
    return {w.upper(): i for i, w in reversed(list(enumerate(kv.words[:restrict_vocab])))}


def evaluate_word_pairs(
    kv: KeyedVectors, pairs: str | os.PathLike = "wordsim353", restrict_vocab: int = 300_000
) -> PairScore:
    """Spearman and Pearson correlation of cosine similarity with human scores (wordsim353, simlex999, a file)."""
    from scipy import stats  # scipy comes with the course extras; only this function needs it

    vocab = _upper_vocab(kv, restrict_vocab)
    gold, model, oov = [], [], 0
    with open(benchmark_path(pairs), encoding="utf8") as f:
        for line in f:
            if not line or line.startswith("#"):
                continue
            try:
                a, b, sim = (w.upper() for w in line.split("\t"))
                score = float(sim)
            except ValueError:
                continue  # not a "word<TAB>word<TAB>score" line
            if a not in vocab or b not in vocab:
                oov += 1
                continue
            gold.append(score)
            model.append(float(kv.unit[vocab[a]] @ kv.unit[vocab[b]]))
    if len(gold) < 2:
        raise ValueError(f"fewer than two pairs of {pairs} are in the vocabulary ({oov} skipped): nothing to correlate")
    return PairScore(float(stats.spearmanr(gold, model)[0]), float(stats.pearsonr(gold, model)[0]), len(gold), oov)


def evaluate_analogies(
    kv: KeyedVectors, analogies: str | os.PathLike = "analogies", restrict_vocab: int = 300_000, batch: int = 512
) -> AnalogyScore:
    """Accuracy on "a : b :: c : d" questions (the Google analogies by default) by 3CosAdd, in batches."""
    vocab = _upper_vocab(kv, restrict_vocab)
    limit = min(restrict_vocab, len(kv))
    section, questions, oov = None, [], 0
    with open(benchmark_path(analogies), encoding="utf8") as f:
        for line in f:
            if line.startswith(": "):
                section = line[2:].strip()
                continue
            words = [w.upper() for w in line.split()]
            if len(words) != 4:
                continue
            if section is None:
                raise ValueError(f"{analogies}: an analogy comes before the first ': section' line")
            if any(w not in vocab for w in words):
                oov += 1
                continue
            questions.append((section, *(vocab[w] for w in words)))
    unit = kv.unit[:limit]
    correct_by_section: dict[str, list[int]] = {}
    for start in range(0, len(questions), batch):
        part = questions[start : start + batch]
        a, b, c, d = (torch.tensor([q[k] for q in part]) for k in range(1, 5))
        query = unit[b] + unit[c] - unit[a]  # (B, D); its length does not change the ranking
        sims = query @ unit.T  # (B, V)
        rows = torch.arange(len(part))
        for words in (a, b, c):
            sims[rows, words] = -math.inf  # the question's own words are never the answer
        hits = (sims.argmax(1) == d).tolist()
        for q, hit in zip(part, hits):
            correct_by_section.setdefault(q[0], []).append(int(hit))
    sections = {name: (sum(h), len(h)) for name, h in correct_by_section.items()}
    correct = sum(c for c, _ in sections.values())
    return AnalogyScore(correct, len(questions), oov, sections)


def evaluate(kv: KeyedVectors) -> dict[str, float]:
    """The three course figures: wordsim353 and simlex999 Spearman, Google analogy accuracy (OOV skipped)."""
    return {
        "wordsim353": evaluate_word_pairs(kv, "wordsim353").spearman,
        "simlex999": evaluate_word_pairs(kv, "simlex999").spearman,
        "analogies": evaluate_analogies(kv).accuracy,
    }
