"""word2vec (Mikolov et al., 2013) in PyTorch: skip-gram and CBOW with negative sampling, batched to be fast.

The recipe is the original one, as in word2vec.c and gensim: frequent words are subsampled, every centre word gets a
window drawn uniformly from 1..window, negatives come from the unigram distribution raised to 0.75, and plain SGD
updates are *summed* (not averaged), with a learning rate that decays linearly to ``min_alpha``.

What makes it fast in PyTorch is batching. A chunk of a few hundred centre words is processed at once:

- the input vectors of the chunk and its margins are gathered once, and every centre's window is a strided view of
  them (``unfold``), so the ``2 * window`` contexts of a centre cost no copies;
- each centre draws its negatives once and shares them across the contexts of its window (BlazingText's trick,
  Gupta & Khare 2017), so every score of the chunk is one batched matrix product ``(K + 1, D) @ (D, 2W + 1)``;
- gradients go back with two more batched products and two ``index_add_``; the gradient for the context vectors,
  which in the window picture overlap, is gathered along anti-diagonals by a second strided view.

On a CPU, ``workers`` threads each take every ``workers``-th chunk and update the shared matrices without locks
("Hogwild", as word2vec.c and gensim do). The same code runs on a GPU with one worker.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .files import CheckpointError, load_weights, save_safetensors

# ---------------------------------------------------------------------------------------------------------------
# Words

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")  # letters and digits, with inner apostrophes and hyphens


def tokenize(text: str) -> list[str]:
    """Lower-cased words: ``"Rock'n'roll, since 1950!"`` -> ``["rock'n'roll", 'since', '1950']``."""
    return _WORD.findall(text.lower())


def wikipedia_sentences(lang: str = "en") -> list[list[str]]:
    """The Wikipedia excerpt as word2vec trains on it: one list of words per paragraph."""
    from .data import wikipedia_lines

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


# ---------------------------------------------------------------------------------------------------------------
# The three random ingredients, each readable on its own


def subsample(ids: torch.Tensor, keep_prob: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask over ``ids``: word w survives with probability ``keep_prob[w]`` (new draws every epoch)."""
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    return u < keep_prob[ids]


def dynamic_windows(n: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A window size per centre, uniform in 1..window: near words count more on average (word2vec.c)."""
    return torch.randint(1, window + 1, (n,), generator=generator)


def draw_negatives(
    noise: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Word ids drawn from ``noise`` (a distribution over the vocabulary) by inverting its cumulative sum."""
    cdf = noise.double().cumsum(0)
    u = torch.rand(shape, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=len(noise) - 1)


def skipgram_pairs(
    ids: torch.Tensor, sentence_ids: torch.Tensor, spans: torch.Tensor, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (centre, context) pair of a stream of ids, as positions: contexts within ``spans[i]`` of centre i
    and in the same sentence. The readable version of what the batched trainer does with masks."""
    n = len(ids)
    centres, contexts = [], []
    for d in range(1, window + 1):
        i = torch.arange(n - d, device=ids.device)
        ok = sentence_ids[d:] == sentence_ids[:-d]
        right = ok & (spans[:-d] >= d)  # centre i, context i + d
        left = ok & (spans[d:] >= d)  # centre i + d, context i
        centres += [i[right], i[left] + d]
        contexts += [i[right] + d, i[left]]
    centre, context = torch.cat(centres), torch.cat(contexts)
    order = torch.argsort(centre * (2 * window + 1) + (context - centre + window))  # centre by centre, left to right
    return centre[order], context[order]


# ---------------------------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class Word2VecConfig:
    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    sample: float = 1e-3  # subsampling threshold; 0 turns it off
    epochs: int = 5
    alpha: float = 0.025  # learning rate at the start, decayed linearly to min_alpha
    min_alpha: float = 1e-4
    model: str = "skipgram"  # or "cbow"
    ns_exponent: float = 0.75
    chunk: int = 512  # centre words per batched update: small enough to fit the cache, big enough to batch
    workers: int = 1  # CPU threads updating the shared matrices (Hogwild); 1 on a GPU
    seed: int = 0

    def __post_init__(self):
        if self.model not in ("skipgram", "cbow"):
            raise ValueError(f"model must be 'skipgram' or 'cbow', got {self.model!r}")
        for name in ("dim", "window", "negative", "min_count", "epochs", "chunk", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.min_alpha <= self.alpha:
            raise ValueError(f"need 0 < min_alpha <= alpha, got alpha={self.alpha}, min_alpha={self.min_alpha}")
        if self.sample < 0:
            raise ValueError(f"sample must be >= 0 (0 turns subsampling off), got {self.sample}")


@dataclass
class TrainingReport:
    """What ``Word2Vec.train`` measured: seconds, words per second and the loss curve."""

    seconds: float = 0.0
    words: int = 0  # corpus words processed (before subsampling), all epochs
    pairs: int = 0  # (centre, context) pairs trained on, all epochs
    losses: list[tuple[float, float]] = field(default_factory=list)  # (progress in epochs, mean loss per pair)

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0


@dataclass
class _Epoch:
    """One epoch's random draws, laid out for chunked training."""

    ids: torch.Tensor  # (n,) the words that survived subsampling
    padded: torch.Tensor  # (n + 2W,) ids with W padding words (id V, a zero row) on both sides
    sentence: torch.Tensor  # (n + 2W,) sentence ids, -1 on the padding
    spans: torch.Tensor  # (n,) each centre's window, 1..W
    targets: torch.Tensor  # (n, K + 1) the centre word, then its K negatives
    raw_words: int  # words in the corpus before subsampling


class Word2Vec:
    """Two embedding matrices trained by negative sampling: ``input`` (the word vectors) and ``output``.

    Skip-gram: each context word's input vector predicts the centre word's output vector against K negatives.
    CBOW: the mean of the window's input vectors predicts the centre word. Row V of both matrices is a padding
    word that stays zero.
    """

    def __init__(self, vocab: Vocab, config: Word2VecConfig | None = None, device: torch.device | str | None = None):
        self.vocab, self.config = vocab, config or Word2VecConfig()
        self.device = torch.device(device or "cpu")
        c, V = self.config, len(vocab)
        self.generator = torch.Generator().manual_seed(c.seed)  # every draw is made on the CPU: same on any device
        self.input = torch.zeros(V + 1, c.dim)
        self.input[:V] = (torch.rand(V, c.dim, generator=self.generator) - 0.5) / c.dim  # as word2vec.c
        self.input = self.input.to(self.device)
        self.output = torch.zeros(V + 1, c.dim, device=self.device)
        self.keep = vocab.keep_probabilities(c.sample)
        self.noise = vocab.noise_distribution(c.ns_exponent)

    @classmethod
    def from_sentences(
        cls, sentences: Sequence[Sequence[str]], config: Word2VecConfig | None = None, device=None
    ) -> Word2Vec:
        config = config or Word2VecConfig()
        return cls(Vocab.build(sentences, config.min_count), config, device)

    # -- one epoch of draws ------------------------------------------------------------------------------------

    def plan_epoch(self, ids: torch.Tensor, sentence_ids: torch.Tensor) -> _Epoch:
        c, g, W, V = self.config, self.generator, self.config.window, len(self.vocab)
        kept = subsample(ids, self.keep, g)
        ids, sentence_ids = ids[kept], sentence_ids[kept]
        n = len(ids)
        spans = dynamic_windows(n, W, g)
        negatives = draw_negatives(self.noise, (n, c.negative), g)
        dev = self.device
        return _Epoch(
            ids=ids.to(dev),
            padded=F.pad(ids, (W, W), value=V).to(dev),
            sentence=F.pad(sentence_ids, (W, W), value=-1).to(dev),
            spans=spans.to(dev),
            targets=torch.cat([ids[:, None], negatives], 1).to(dev),
            raw_words=len(kept),
        )

    # -- the batched updates -----------------------------------------------------------------------------------

    def _window_mask(self, ep: _Epoch, s: int, e: int) -> torch.Tensor:
        """(m, 2W + 1): is offset j - W a context of centre s + i (inside its span, same sentence, not itself)?"""
        W = self.config.window
        offsets = torch.arange(-W, W + 1, device=self.device).abs()
        same = ep.sentence[s : e + 2 * W].unfold(0, 2 * W + 1, 1) == ep.sentence[s + W : e + W, None]
        return same & (offsets <= ep.spans[s:e, None]) & (offsets > 0)

    def skipgram_chunk(
        self, ep: _Epoch, s: int, e: int, lr: float, buf: _Buffers | None = None, want_loss: bool = False
    ):
        """SGD on the centres s..e-1: each context in a centre's window predicts it against the same K negatives.

        For a context's input vector h and a target's output vector u with label y (1 for the centre word, 0 for a
        negative), -log sigmoid(+-u.h) has gradient sigmoid(u.h) - y on the score u.h. word2vec steps u by
        lr * (y - sigmoid(u.h)) * h and h by the same factor times u; a vector used by several pairs gets the sum.
        """
        W, D, m = self.config.window, self.config.dim, e - s
        J, M = 2 * W + 1, m + 2 * W  # window width; positions the chunk's windows cover
        buf = buf or _Buffers(self, m)
        positions = ep.padded[s : e + 2 * W]  # (M,)
        H = self.input.index_select(0, positions)  # (M, D) input vectors
        windows = H.unfold(0, J, 1)  # (m, D, J): centre i's window, a view
        targets = ep.targets[s:e]  # (m, R): the centre word, then its negatives
        U = buf.targets(m)  # (m, R, D), inside a buffer with zero margins
        torch.index_select(self.output, 0, targets.reshape(-1), out=U.view(-1, D))
        G = buf.scores(m)  # (m, R, J)
        torch.bmm(U, windows, out=G)  # u.h for every target and every window position
        in_window = self._window_mask(ep, s, e)  # (m, J)
        is_target = targets != targets[:, :1]  # a negative that is the centre word itself is skipped (word2vec.c)
        is_target[:, 0] = True
        mask = in_window[:, None, :] & is_target[:, :, None]  # (m, R, J)
        loss = _negative_sampling_loss(G, mask) if want_loss else None
        torch.sigmoid(G, out=G)
        G.neg_()[:, 0] += 1  # y - sigmoid(u.h)
        G.mul_(mask).mul_(lr)
        grad_U = torch.bmm(G, windows.transpose(1, 2))  # (m, R, D)
        # Position t of H is offset 2W - j of centre t - 2W + j (j = 0..2W): gather those along anti-diagonals
        R = targets.size(1)
        U_near = buf.U.view(-1, D).as_strided((M, J * R, D), (R * D, D, 1))  # the targets of the 2W + 1 centres
        G_near = buf.G.as_strided((M, J, R), (R * J, R * J - 1, J), 2 * W).reshape(M, 1, J * R)
        grad_H = torch.bmm(G_near, U_near).view(M, D)
        self.output.index_add_(0, targets.reshape(-1), grad_U.view(-1, D))
        self.input.index_add_(0, positions, grad_H)
        return loss, in_window.sum()

    def cbow_chunk(self, ep: _Epoch, s: int, e: int, lr: float, buf: _Buffers | None = None, want_loss: bool = False):
        """SGD on the centres s..e-1: the mean h of a window's input vectors predicts the centre word.

        As in word2vec.c (and gensim with cbow_mean=1), the whole error vector is added to every context's input
        vector, not divided by the window's size.
        """
        W, D, m = self.config.window, self.config.dim, e - s
        J, M = 2 * W + 1, m + 2 * W
        buf = buf or _Buffers(self, m)
        positions = ep.padded[s : e + 2 * W]
        H = self.input.index_select(0, positions)  # (M, D)
        windows = H.unfold(0, J, 1).transpose(1, 2)  # (m, J, D): centre i's window, a view
        in_window = buf.window_weights(m)  # (m, J), inside a buffer with zero margins
        in_window.copy_(self._window_mask(ep, s, e))
        count = in_window.sum(1, keepdim=True)  # (m, 1)
        h = torch.bmm((in_window / count.clamp(min=1))[:, None, :], windows)  # (m, 1, D) mean of the window
        targets = ep.targets[s:e]
        U = self.output.index_select(0, targets.reshape(-1)).view(m, -1, D)  # (m, R, D)
        scores = torch.bmm(U, h.transpose(1, 2))  # (m, R, 1)
        mask = (targets != targets[:, :1]) & (count > 0)
        mask[:, 0] = count[:, 0] > 0
        mask = mask[:, :, None]
        loss = _negative_sampling_loss(scores, mask) if want_loss else None
        G = torch.sigmoid(scores).neg_()
        G[:, 0] += 1
        G.mul_(mask).mul_(lr)  # (m, R, 1)
        grad_U = G * h  # (m, R, D)
        errors = buf.errors(m)  # (m, D)
        torch.bmm(G.transpose(1, 2), U, out=errors.view(m, 1, D))
        # Position t of H is in the window of centre t - 2W + j at offset 2W - j: anti-diagonals again
        E_near = buf.E.as_strided((M, J, D), (D, D, 1))
        w_near = buf.M.as_strided((M, J), (J, J - 1), 2 * W).contiguous().view(M, 1, J)
        grad_H = torch.bmm(w_near, E_near).view(M, D)
        self.output.index_add_(0, targets.reshape(-1), grad_U.view(-1, D))
        self.input.index_add_(0, positions, grad_H)
        return loss, (count > 0).sum()

    # -- the loop ----------------------------------------------------------------------------------------------

    def train(
        self,
        sentences: Sequence[Sequence[str]],
        epochs: int | None = None,
        progress: bool = False,
        callback: Callable[[float, float], None] | None = None,
        report_every: int = 50,
    ) -> TrainingReport:
        """Train on ``sentences`` (lists of words); ``callback(epoch_progress, loss)`` every ``report_every`` chunks.

        The learning rate falls linearly from alpha to min_alpha over all ``epochs``.
        """
        c = self.config
        epochs = epochs or c.epochs
        ids, sentence_ids = self.vocab.encode(sentences)
        if len(ids) == 0:
            raise ValueError("none of these sentences has a word of the vocabulary; is it the corpus it was built on?")
        report = TrainingReport()
        bar = _progress_bar(epochs * len(ids), progress)
        start = time.perf_counter()
        with _one_thread_per_worker(self.device):
            for epoch in range(epochs):
                ep = self.plan_epoch(ids, sentence_ids)
                self._run_epoch(ep, epoch, epochs, report, bar, callback, report_every)
                report.words += ep.raw_words
                bar.update(report.words - bar.n)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        report.seconds = time.perf_counter() - start
        bar.close()
        return report

    def _run_epoch(self, ep: _Epoch, epoch: int, epochs: int, report: TrainingReport, bar, callback, report_every):
        """The epoch's chunks, dealt round-robin to the workers; the main thread is worker 0 and does the reporting."""
        c, n = self.config, len(ep.ids)
        step = self.skipgram_chunk if c.model == "skipgram" else self.cbow_chunk
        workers = c.workers if self.device.type == "cpu" else 1
        pairs = [torch.zeros((), dtype=torch.long, device=self.device) for _ in range(workers)]
        stop, failures = threading.Event(), []

        def work(w: int) -> None:
            buf = _Buffers(self, c.chunk)
            for k, s in enumerate(range(w * c.chunk, n, workers * c.chunk)):
                if stop.is_set():
                    return
                at = epoch + s / n  # progress in epochs
                lr = c.alpha - (c.alpha - c.min_alpha) * at / epochs
                loss, count = step(ep, s, min(n, s + c.chunk), lr, buf, want_loss=w == 0 and k % report_every == 0)
                pairs[w] += count
                if w == 0:
                    bar.update(report.words + round(ep.raw_words * min(n, s + workers * c.chunk) / n) - bar.n)
                    if loss is not None:
                        report.losses.append((at, float(loss)))
                        if callback is not None:
                            callback(at, float(loss))

        def run_in_thread(w: int) -> None:
            try:
                work(w)
            except BaseException as error:  # re-raised in the main thread
                failures.append(error)
                stop.set()

        threads = [threading.Thread(target=run_in_thread, args=(w,), daemon=True) for w in range(1, workers)]
        for t in threads:
            t.start()
        try:
            work(0)
        except BaseException:  # an error or an interrupt: the other workers stop at their next chunk
            stop.set()
            raise
        finally:
            for t in threads:
                t.join()
        if failures:
            raise failures[0]
        report.pairs += int(sum(pairs))

    @property
    def wv(self) -> KeyedVectors:
        """The trained word vectors (the input matrix, as word2vec.c and gensim keep)."""
        return KeyedVectors(self.vocab.words, self.input[: len(self.vocab)].detach().cpu().clone(), self.vocab.counts)


class _Buffers:
    """Per-worker scratch tensors with 2W zero rows on both sides, so the anti-diagonal views never leave them."""

    def __init__(self, model: Word2Vec, chunk: int):
        c, dev = model.config, model.device
        W, R, J = c.window, c.negative + 1, 2 * c.window + 1
        self.W = W
        self.U = torch.zeros(chunk + 4 * W, R, c.dim, device=dev)  # skip-gram: target vectors
        self.G = torch.zeros(chunk + 4 * W, R, J, device=dev)  # skip-gram: scores, then gradients
        self.E = torch.zeros(chunk + 4 * W, c.dim, device=dev)  # CBOW: error vectors
        self.M = torch.zeros(chunk + 4 * W, J, device=dev)  # CBOW: window masks
        self.chunk = chunk

    def _inner(self, t: torch.Tensor, m: int) -> torch.Tensor:
        if m > self.chunk:
            raise ValueError(f"a chunk of {m} centres does not fit buffers made for {self.chunk}")
        if m < self.chunk:  # a short last chunk: clear what the previous chunk left beyond it
            t[2 * self.W + m :].zero_()
        return t[2 * self.W : 2 * self.W + m]

    def targets(self, m: int) -> torch.Tensor:
        return self._inner(self.U, m)

    def scores(self, m: int) -> torch.Tensor:
        return self._inner(self.G, m)

    def errors(self, m: int) -> torch.Tensor:
        return self._inner(self.E, m)

    def window_weights(self, m: int) -> torch.Tensor:
        return self._inner(self.M, m)


def negative_sampling_loss(h: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per pair: -log sigmoid(u_pos . h) - sum_k log sigmoid(-u_k . h).

    h: (B, D) input vectors; positive: (B, D) the true targets' output vectors; negatives: (B, K, D).
    """
    pos = (h * positive).sum(-1)  # (B,)
    neg = torch.bmm(negatives, h[:, :, None]).squeeze(-1)  # (B, K)
    return -F.logsigmoid(pos) - F.logsigmoid(-neg).sum(-1)


def _negative_sampling_loss(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of -log sigmoid(u_pos.h) - sum_k log sigmoid(-u_k.h); scores and mask are (m, R, ...)."""
    signed = torch.cat([scores[:, :1], -scores[:, 1:]], 1)
    total = -(F.logsigmoid(signed) * mask).sum()
    return total / mask[:, 0].sum().clamp(min=1)


class _one_thread_per_worker:
    """On a CPU the chunks are too small for intra-op threads to pay off: run each worker on one thread."""

    def __init__(self, device: torch.device):
        self.cpu = device.type == "cpu"

    def __enter__(self):
        if self.cpu:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)

    def __exit__(self, *exc):
        if self.cpu:
            torch.set_num_threads(self.saved)


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="word", unit_scale=True, disable=not enabled, mininterval=0.5)


def train_word2vec(
    sentences: Sequence[Sequence[str]], device=None, progress: bool = False, **config
) -> tuple[KeyedVectors, TrainingReport]:
    """Build the vocabulary, train, and return the word vectors with the training report."""
    model = Word2Vec.from_sentences(sentences, Word2VecConfig(**config), device)
    report = model.train(sentences, progress=progress)
    return model.wv, report


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
        from safetensors import safe_open

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


# ---------------------------------------------------------------------------------------------------------------
# Evaluation, counted the way gensim counts (so the figures compare): a pair or analogy with a word outside the
# vocabulary is skipped, and its share is reported as the out-of-vocabulary ratio.

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
        from .data import gensim_datapath

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
    from scipy import stats

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


# ---------------------------------------------------------------------------------------------------------------
# Static against contextual: the same questions asked of a BERT's hidden states


def cosine_matrix(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity of every row of x with every row of y (default x): (N, D), (M, D) -> (N, M)."""
    y = x if y is None else y
    return F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).T


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
