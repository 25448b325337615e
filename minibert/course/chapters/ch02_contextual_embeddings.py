"""Exercises and questions of chapter 02, from static to contextual embeddings
(solutions/02_contextual_embeddings.ipynb)."""

from __future__ import annotations

import functools

import torch

from ... import embeddings as w2v
from ...hf import minilm_path
from ...text import BertTokenizer
from ..spec import Case, Exercise, Question, seeded_tensors


@functools.lru_cache(maxsize=1)
def _tokenizer():
    return BertTokenizer.from_pretrained(minilm_path())


def _matrix_cases() -> list:
    pairs = [Case(tuple(seeded_tensors((5, 8), (3, 8), seed=s))) for s in range(2)]
    return pairs + [Case((seeded_tensors((6, 4), seed=9)[0], None), "y is None: x with itself")]


def _token_cases() -> list:
    tok, cases = _tokenizer(), []
    for sentence, word, label in [
        ("The bank of the river was muddy.", "bank", ""),
        ("Banking aside, the bank was closed.", "bank", "'bank' first appears inside 'banking'"),
        ("We trained embeddings on Wikipedia.", "embeddings", "a word of several pieces"),
        ("A sentence without it.", "river", "the word is absent"),
        ("Rock, rock and rock again.", "rock", "three times: the first counts"),
    ]:
        cases.append(Case((tok.convert_ids_to_tokens(tok.encode(sentence)), tok.tokenize(word)), label))
    return cases


def _mix_cases() -> list:
    return [
        (seeded_tensors((7, 2, 5, 8), seed=s)[0], seeded_tensors((7,), seed=s + 10)[0], gamma)
        for s, gamma in [(0, 1.0), (1, 0.5), (2, 3.0)]
    ]


def _use_cases() -> list:
    base = seeded_tensors((1, 16), seed=3)[0]
    return [(seeded_tensors((6, 16), seed=s)[0] + k * base,) for s, k in [(0, 0.0), (1, 2.0), (2, 10.0)]]


def _sense_cases() -> list:
    cases = []
    for s in range(3):
        centres = seeded_tensors((2, 16), seed=20 + s)[0]
        noise = seeded_tensors((8, 16), seed=30 + s)[0]
        senses = ["a", "b", "a", "a", "b", "b", "a", "b"]
        cases.append((torch.stack([centres[int(x == "b")] for x in senses]) + (s + 0.5) * noise, senses))
    return cases


ITEMS = [
    Exercise(
        id="02.1",
        function="cosine_matrix",
        cases=_matrix_cases,
        reference=w2v.cosine_matrix,
        args=("x", "y"),
        dims=("row of x", "row of y"),
        atol=1e-6,
        hints=(
            "The cosine of two vectors is the dot product of their unit vectors: make every row unit length once, "
            "and a single matrix product gives all N × M cosines.",
            "F.normalize(t, dim=-1) divides each row by its length. When y is None, use x in its place.",
            "y = x if y is None else y; F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T",
        ),
    ),
    Exercise(
        id="02.2",
        function="find_word",
        cases=_token_cases,
        reference=w2v.find_word,
        args=("tokens", "pieces"),
        hints=(
            "Slide a window as long as the word's pieces along the tokens; a match counts only if the word ends "
            "there, that is, if the next token does not continue it.",
            "At each start i compare tokens[i:i + n] with pieces; reject the match when tokens[i + n] exists and "
            "starts with '##'. Return the positions of the first match, or [].",
            "whole = i + n == len(tokens) or not tokens[i + n].startswith('##'); if tokens[i:i + n] == pieces and "
            "whole: return list(range(i, i + n))",
        ),
    ),
    Exercise(
        id="02.3",
        function="scalar_mix",
        cases=_mix_cases,
        reference=w2v.scalar_mix,
        args=("hidden_states", "weights", "gamma"),
        atol=1e-6,
        hints=(
            "The mix is a weighted average of the layers, with weights that are positive and sum to 1 (a softmax "
            "of the raw weights), scaled by gamma.",
            "torch.softmax(weights, 0) has one weight per layer; reshape it to (L + 1, 1, 1, ...) with as many 1s "
            "as hidden_states has other dimensions, so it broadcasts; multiply and sum over dimension 0.",
            "s = torch.softmax(weights, 0).reshape(-1, *[1] * (hidden_states.dim() - 1)); "
            "gamma * (s * hidden_states).sum(0)",
        ),
    ),
    Exercise(
        id="02.4",
        function="self_similarity",
        cases=_use_cases,
        reference=w2v.self_similarity,
        args=("vectors",),
        atol=1e-6,
        hints=(
            "Average the cosine of every pair of different uses: the similarity matrix without its diagonal, which "
            "is all 1s (each use with itself).",
            "Build the N × N cosine matrix (exercise 02.1); the sum of the off-diagonal entries is the total sum "
            "minus the trace; there are N(N - 1) of them. Return a Python float.",
            "sims = unit @ unit.T; float((sims.sum() - sims.diagonal().sum()) / (n * n - n))",
        ),
    ),
    Exercise(
        id="02.5",
        function="sense_separation",
        cases=_sense_cases,
        reference=w2v.sense_separation,
        args=("vectors", "senses"),
        atol=1e-6,
        hints=(
            "Two averages of the cosine matrix: over pairs of different uses with the same sense, and over pairs "
            "with different senses; the answer is the first minus the second.",
            "Make a boolean N × N matrix 'same sense' from the labels, and one that is False on the diagonal; "
            "index the cosine matrix with them to average each group.",
            "same = torch.tensor([[a == b for b in senses] for a in senses]); off = ~torch.eye(n, dtype=torch.bool); "
            "float(sims[same & off].mean() - sims[~same].mean())",
        ),
    ),
    Question(
        id="02.Q1",
        function="equal_mix_weight",
        answer=lambda: w2v.scalar_mix(torch.eye(7), torch.zeros(7))[0].item(),
        hints=("With all raw weights equal, the softmax treats the 7 layers (embeddings + 6 blocks) alike.",),
        explanation="softmax of 7 equal numbers gives 1/7 ≈ 0.143 to each layer: the plain average, where the "
        "mix starts before training moves the weights towards the layers that suit the task.",
    ),
    Question(
        id="02.Q2",
        function="what_self_similarity_one_means",
        answer=lambda: "a",
        choices={
            "a": "the model gives the word the same vector in every sentence: it ignores the context",
            "b": "the word has a single sense",
            "c": "the model understands the word perfectly",
        },
        hints=("Self-similarity averages the cosine between the vectors of different uses. When is a cosine 1?",),
        explanation="A cosine of 1 between every pair of uses means every use has the same direction: the vector "
        "does not depend on the sentence, as with word2vec. A word with one sense still gets different "
        "contextual vectors in different sentences.",
    ),
]
