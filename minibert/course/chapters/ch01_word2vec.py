"""Exercises and questions of chapter 01, word2vec (solutions/01_word2vec.ipynb)."""

from __future__ import annotations

import torch

from ... import embeddings as w2v
from ..spec import Case, Exercise, Question, seeded_tensors

WORDS = [f"w{i}" for i in range(30)]


def _count_cases() -> list:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randint(1, 10**k, (50,), generator=gen), t) for k, t in [(3, 1e-3), (5, 1e-3), (5, 1e-2)]]


def _stream_cases() -> list:
    cases = []
    for seed, (n, window) in enumerate([(12, 2), (40, 5), (60, 3)]):
        gen = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, 20, (n,), generator=gen)
        sentence_ids = torch.sort(torch.randint(0, 4, (n,), generator=gen)).values
        spans = torch.randint(1, window + 1, (n,), generator=gen)
        cases.append((ids, sentence_ids, spans, window))
    return cases


def _analogy_cases() -> list:
    cases = []
    for s in range(4):
        vectors = seeded_tensors((30, 12), seed=10 + s)[0]
        vectors[3] = vectors[2] - vectors[0] + vectors[1] + 0.1 * vectors[4]  # w3 completes w0 : w2 :: w1 : ?
        cases.append(Case((vectors, WORDS, "w0", "w2", "w1"), "w3 completes w0 : w2 :: w1 : ?"))
    return cases


def _pairs_in_a_sentence() -> int:
    n = 10
    centre, _ = w2v.skipgram_pairs(torch.arange(n), torch.zeros(n, dtype=torch.long), torch.full((n,), 2), 2)
    return len(centre)


ITEMS = [
    Exercise(
        id="01.1",
        function="keep_probability",
        cases=_count_cases,
        reference=lambda counts, t: w2v.Vocab([str(i) for i in range(len(counts))], counts).keep_probabilities(t),
        args=("counts", "t"),
        index="word",
        hints=(
            "Each word's frequency f is its share of the whole corpus; the formula turns it into a probability, "
            "which can never be above 1.",
            "f = counts / counts.sum() (compute it in float64, then return float32); evaluate (sqrt(f / t) + 1) * "
            "t / f for all words at once; cap it at 1.",
            "f = counts.double() / counts.sum(); ((f / t).sqrt() + 1).mul(t / f).clamp(max=1).float()",
        ),
    ),
    Exercise(
        id="01.2",
        function="skipgram_pairs",
        cases=_stream_cases,
        reference=w2v.skipgram_pairs,
        args=("ids", "sentence_ids", "spans", "window"),
        returns=("centre", "context"),
        index="pair",
        hints=(
            "For every centre position i, its contexts are the positions j around it, no further than spans[i], "
            "that are not i itself and belong to the same sentence.",
            "Two loops: i over the stream, j from i - spans[i] to i + spans[i] (clipped to the stream); skip j == i "
            "and j whose sentence_ids differ. Collect i and j in two lists, in that order.",
            "for j in range(max(0, i - s), min(len(ids), i + s + 1)): if j != i and sentence_ids[j] == "
            "sentence_ids[i]: append i and j; return two torch.long tensors.",
        ),
    ),
    Exercise(
        id="01.3",
        function="negative_sampling_loss",
        cases=lambda: [tuple(seeded_tensors((8, 16), (8, 16), (8, 5, 16), seed=s)) for s in range(3)],
        reference=w2v.negative_sampling_loss,
        args=("h", "positive", "negatives"),
        index="pair",
        hints=(
            "The true target's score u·h should be high, each negative's low: the loss is -log σ(score) for the "
            "target and -log σ(-score) for each negative, summed over the negatives.",
            "The target scores are (h * positive).sum(-1), shape (B,); the negatives' scores are a batched product "
            "of (B, K, D) with (B, D, 1), shape (B, K). F.logsigmoid is log σ.",
            "pos = (h * positive).sum(-1); neg = torch.bmm(negatives, h[:, :, None]).squeeze(-1); "
            "return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)",
        ),
    ),
    Exercise(
        id="01.4",
        function="nearest_words",
        cases=lambda: [(seeded_tensors((30, 12), seed=s)[0], WORDS, f"w{s}", 5) for s in range(3)],
        reference=lambda vectors, words, word, topn: [
            w for w, _ in w2v.KeyedVectors(words, vectors).most_similar(word, topn=topn)
        ],
        args=("vectors", "words", "word", "topn"),
        hints=(
            "Cosine similarity is the dot product of unit vectors: normalise every row once, and one matrix-vector "
            "product scores every word against the query.",
            "F.normalize(vectors, dim=1) gives unit rows; multiply by the query's unit row; the query itself scores "
            "1, so set its score to -inf before taking the top ones.",
            "unit = F.normalize(vectors, dim=1); sims = unit @ unit[i]; sims[i] = -inf; [words[j] for j in "
            "sims.topk(topn).indices.tolist()]",
        ),
    ),
    Exercise(
        id="01.5",
        function="solve_analogy",
        cases=_analogy_cases,
        reference=lambda vectors, words, a, b, c: w2v.KeyedVectors(words, vectors).analogy(a, b, c)[0][0],
        args=("vectors", "words", "a", "b", "c"),
        hints=(
            "The offset from a to b, added to c, points near the answer: look for the word closest to b - a + c, "
            "among the words that are not a, b or c.",
            "Normalise the rows first, so that every word counts equally in the offset; score all words by cosine "
            "with q = unit[b] - unit[a] + unit[c]; exclude a, b and c before taking the best.",
            "sims = unit @ (unit[ib] - unit[ia] + unit[ic]); sims[[ia, ib, ic]] = -inf; words[int(sims.argmax())]",
        ),
    ),
    Question(
        id="01.Q1",
        function="keep_share",
        answer=lambda: w2v.Vocab(["the", "rest"], [1, 99]).keep_probabilities(1e-3)[0].item(),
        hints=("Put f = 0.01 and t = 0.001 into the formula of exercise 01.1: f / t = 10.",),
        explanation="(√10 + 1) × 0.001 / 0.01 = 0.416: a word that is 1% of the corpus, such as 'the', keeps "
        "about 42% of its occurrences. The frequent words lose most of their pairs, the rare ones none, and "
        "training spends its time on the words that carry meaning.",
    ),
    Question(
        id="01.Q2",
        function="pairs_in_a_sentence",
        answer=_pairs_in_a_sentence,
        rel_tol=0.0,
        abs_tol=0.5,
        hints=(
            "A word in the middle has 2 neighbours on each side; the two words at each end have fewer. Count the "
            "pairs word by word.",
        ),
        explanation="6 middle words × 4 + 2 × 3 + 2 × 2 = 34 pairs: about 2 × window pairs per word, which is "
        "why skip-gram is slower than CBOW, which makes one prediction per word.",
    ),
]
