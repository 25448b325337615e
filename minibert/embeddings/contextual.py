"""Static against contextual embeddings (chapter 02): the same questions asked of a BERT's hidden states as of
word2vec's vectors, and ELMo's scalar mix of layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .vectors import cosine_matrix


def find_word(tokens: Sequence[str], pieces: Sequence[str]) -> list[int]:
    """Positions of the first run of ``pieces`` (a word's WordPieces) in ``tokens`` that is a whole word.

    A run that continues with a ``##`` piece is part of a longer word ("bank" inside "bank ##ing") and is skipped.
    Returns [] when the word is not there.
    """
    n = len(pieces)
    for i in range(len(tokens) - n + 1):
        if list(tokens[i : i + n]) == list(pieces) and not (i + n < len(tokens) and tokens[i + n].startswith("##")):
            return list(range(i, i + n))
    return []


@torch.no_grad()
def contextual_vectors(encoder, tokenizer, sentences: Sequence[str], word: str) -> torch.Tensor:
    """The vector of ``word`` in each sentence at every layer: (L + 1, N, D), the mean over its WordPieces.

    Layer 0 is the embedding layer (no context yet); layer L is the encoder's output.
    """
    pieces = tokenizer.tokenize(word)
    device = next(encoder.parameters()).device
    batch = {k: v.to(device) for k, v in tokenizer(list(sentences), return_tensors="pt").items()}
    hidden = torch.stack(encoder(**batch, output_hidden_states=True).hidden_states)  # (L + 1, N, T, D)
    vectors = []
    for i, ids in enumerate(batch["input_ids"].tolist()):
        positions = find_word(tokenizer.convert_ids_to_tokens(ids), pieces)
        if not positions:
            raise ValueError(f"{word!r} (pieces {pieces}) is not a word of sentence {i}: {sentences[i]!r}")
        vectors.append(hidden[:, i, positions].mean(1))
    return torch.stack(vectors, 1).cpu()


def scalar_mix(hidden_states: torch.Tensor, weights: torch.Tensor, gamma: float | torch.Tensor = 1.0) -> torch.Tensor:
    """ELMo's mix of layers: gamma * sum_l softmax(weights)_l * h_l, for hidden_states of shape (L + 1, ..., D)."""
    if weights.shape != hidden_states.shape[:1]:
        raise ValueError(f"need one weight per layer: {hidden_states.size(0)} layers, weights {tuple(weights.shape)}")
    s = torch.softmax(weights, 0).reshape(-1, *[1] * (hidden_states.dim() - 1))
    return gamma * (s * hidden_states).sum(0)


def self_similarity(vectors: torch.Tensor) -> float:
    """Mean cosine between different occurrences of one word (Ethayarajh, 2019): 1 for a static embedding."""
    if len(vectors) < 2:
        raise ValueError("need at least two occurrences to compare")
    sims = cosine_matrix(vectors.float())
    n = len(vectors)
    return float((sims.sum() - sims.diagonal().sum()) / (n * n - n))


def sense_separation(vectors: torch.Tensor, senses: Sequence) -> float:
    """Mean cosine between uses of the same sense minus mean cosine across senses (0: senses not told apart)."""
    senses = list(senses)
    if len(senses) != len(vectors) or len(set(senses)) < 2:
        raise ValueError("need one sense label per vector and at least two senses")
    sims = cosine_matrix(vectors.float())
    same = torch.tensor([[a == b for b in senses] for a in senses])
    off_diagonal = ~torch.eye(len(senses), dtype=torch.bool)
    return float(sims[same & off_diagonal].mean() - sims[~same].mean())
