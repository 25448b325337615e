"""Word vectors and the queries people ask of them: similarity, nearest neighbours, analogies, save and load."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open

from ..files import CheckpointError, load_weights, save_safetensors

# ---------------------------------------------------------------------------------------------------------------
# The result: word vectors and the queries people ask of them


class KeyedVectors:
    """Words and their vectors: similarity, nearest neighbours, analogies (3CosAdd), save and load."""

    def __init__(self, words: Sequence[str], vectors: torch.Tensor, counts: Sequence[int] | torch.Tensor | None = None):
        vectors = torch.as_tensor(vectors, dtype=torch.float32)
        if vectors.dim() != 2 or vectors.size(0) != len(words):
            raise ValueError(f"need one row per word: {len(words)} words, vectors of shape {tuple(vectors.shape)}")
        self.words = list(words)
        self.vectors = vectors
        self.counts = None if counts is None else torch.as_tensor(counts, dtype=torch.long)
        self.index = {w: i for i, w in enumerate(self.words)}
        self._unit: torch.Tensor | None = None

    @classmethod
    def from_gensim(cls, kv) -> KeyedVectors:
        """Wrap a gensim ``KeyedVectors`` (e.g. ``Word2Vec(...).wv``) to query and evaluate it the same way."""
        counts = [kv.get_vecattr(w, "count") for w in kv.index_to_key] if "count" in kv.expandos else None
        return cls(kv.index_to_key, torch.from_numpy(kv.vectors.copy()), counts)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} words x {self.dim} dimensions)"

    @property
    def dim(self) -> int:
        return self.vectors.size(1)

    def key(self, word: str) -> int:
        """The row of ``word``; a clear KeyError for a word the model never learned."""
        try:
            return self.index[word]
        except KeyError:
            hint = f" (words are lower-case: try {word.lower()!r})" if word.lower() in self.index else ""
            raise KeyError(
                f"{word!r} is not in the vocabulary of {len(self)} words{hint}; words rarer than min_count are "
                "dropped when the vocabulary is built"
            ) from None

    def __getitem__(self, word: str) -> torch.Tensor:
        return self.vectors[self.key(word)]

    @property
    def unit(self) -> torch.Tensor:
        """Every vector scaled to length 1 (cosine similarity becomes a dot product)."""
        if self._unit is None:
            self._unit = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return self._unit

    def similarity(self, a: str, b: str) -> float:
        """Cosine similarity of two words."""
        return float(self.unit[self.key(a)] @ self.unit[self.key(b)])

    def most_similar(
        self,
        positive: str | torch.Tensor | Sequence[str | torch.Tensor] = (),
        negative: str | torch.Tensor | Sequence[str | torch.Tensor] = (),
        topn: int = 10,
        restrict_vocab: int | None = None,
    ) -> list[tuple[str, float]]:
        """The ``topn`` words closest (by cosine) to the mean of the positive unit vectors minus the negative ones.

        Words given as queries are left out of the answer, as gensim does.
        """
        positive, negative = _as_list(positive), _as_list(negative)
        if not positive and not negative:
            raise ValueError("give at least one word or vector in positive or negative")
        rows, exclude = [], set()
        for sign, items in ((1.0, positive), (-1.0, negative)):
            for item in items:
                if isinstance(item, str):
                    i = self.key(item)
                    rows.append(sign * self.unit[i])
                    exclude.add(i)
                else:
                    v = torch.as_tensor(item, dtype=torch.float32)
                    rows.append(sign * v / v.norm().clamp(min=1e-12))
        query = torch.stack(rows).mean(0)
        query = query / query.norm().clamp(min=1e-12)
        limit = len(self) if restrict_vocab is None else min(restrict_vocab, len(self))
        sims = self.unit[:limit] @ query
        k = min(limit, topn + len(exclude))
        best = torch.topk(sims, k).indices.tolist()
        return [(self.words[i], float(sims[i])) for i in best if i not in exclude][:topn]

    def analogy(self, a: str, b: str, c: str, topn: int = 1) -> list[tuple[str, float]]:
        """Answer "a is to b as c is to ?" by 3CosAdd: the words nearest to b - a + c (unit vectors)."""
        return self.most_similar(positive=[b, c], negative=[a], topn=topn)

    # -- files ---------------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """One ``.safetensors`` file: the vectors (and counts), the words in its metadata."""
        path = Path(path)
        if path.suffix != ".safetensors":
            raise ValueError(f"save word vectors to a .safetensors file, got {path.name!r}")
        tensors = {"vectors": self.vectors}
        if self.counts is not None:
            tensors["counts"] = self.counts
        save_safetensors(tensors, path, metadata={"format": "minibert.word2vec", "words": json.dumps(self.words)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> KeyedVectors:
        tensors = load_weights(path)  # clear errors for a missing or corrupt file
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != "minibert.word2vec" or "vectors" not in tensors:
            raise CheckpointError(f"{path} is not a word-vector file written by KeyedVectors.save")
        return cls(json.loads(meta["words"]), tensors["vectors"], tensors.get("counts"))


def _as_list(x) -> list:
    if isinstance(x, (str, torch.Tensor)):
        return [x]
    return list(x)


def cosine_matrix(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity of every row of x with every row of y (default x): (N, D), (M, D) -> (N, M)."""
    y = x if y is None else y
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T
