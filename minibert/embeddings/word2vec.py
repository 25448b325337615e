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

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..runtime import progress_bar
from .vectors import KeyedVectors
from .vocab import Vocab

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
        bar = progress_bar(epochs * len(ids), "word2vec", not progress, unit="word", unit_scale=True, mininterval=0.5)
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


def train_word2vec(
    sentences: Sequence[Sequence[str]], device=None, progress: bool = False, **config
) -> tuple[KeyedVectors, TrainingReport]:
    """Build the vocabulary, train, and return the word vectors with the training report."""
    model = Word2Vec.from_sentences(sentences, Word2VecConfig(**config), device)
    report = model.train(sentences, progress=progress)
    return model.wv, report
