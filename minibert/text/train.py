"""Training a WordPiece vocabulary: merge the best pair of symbols again and again (chapter 03)."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from .normalize import basic_tokenize
from .wordpiece import PREFIX, SPECIAL_TOKENS, BertTokenizer

# ---------------------------------------------------------------------------------------------------------------
# Training a WordPiece vocabulary


def _alphabet_vocab(words: dict[str, int], special_tokens: Sequence[str]) -> list[str]:
    """Special tokens, then every character seen at the start of a word, then every ``##`` continuation."""
    first, rest = set(), set()
    for w in words:
        first.add(w[0])
        rest.update(w[1:])
    vocab = list(special_tokens)
    vocab += sorted(first - set(vocab))
    vocab += sorted(PREFIX + c for c in rest if PREFIX + c not in set(vocab))
    return vocab


def train_wordpiece(
    lines: Iterable[str],
    vocab_size: int,
    lowercase: bool = True,
    strip_accents: bool | None = None,
    special_tokens: Sequence[str] = SPECIAL_TOKENS,
    min_pair_count: int = 1,
    scoring: str = "likelihood",
    progress: bool = False,
) -> BertTokenizer:
    """Learn a WordPiece vocabulary of ``vocab_size`` tokens from ``lines``.

    Start from the characters; repeatedly merge the adjacent pair with the best score and add it to the vocabulary.
    WordPiece's score is ``count(ab) / (count(a) * count(b))``: how much more often a and b occur together than
    chance predicts, which is how much merging them raises the corpus likelihood under a unigram model.
    ``scoring="frequency"`` merges the most frequent pair instead (BPE's rule, which the ``tokenizers`` trainer uses).
    """
    if scoring not in ("likelihood", "ratio", "frequency"):
        raise ValueError(f"scoring={scoring!r}: use 'likelihood', 'ratio' or 'frequency'")
    word_counts: Counter[str] = Counter()
    for line in lines:
        word_counts.update(basic_tokenize(line, lowercase, strip_accents))
    vocab = _alphabet_vocab(word_counts, special_tokens)
    if vocab_size < len(vocab):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the alphabet and special tokens ({len(vocab)})")
    merges = _learn_merges(word_counts, vocab, vocab_size, min_pair_count, scoring, progress)
    vocab += merges
    return BertTokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)


def _learn_merges(
    word_counts: dict[str, int], vocab: list[str], vocab_size: int, min_pair_count: int, scoring: str, progress: bool
) -> list[str]:
    """The merge loop on integer ids with incremental pair counts and a lazy max-heap.

    Merging (a, b) changes the counts of the pairs around each occurrence and, for the likelihood and ratio scores,
    the score of every pair that contains a or b, since count(a) and count(b) drop. Each pair whose score changes is
    pushed again; an entry whose score is no longer the pair's current one is dropped when popped.
    """
    ids = {t: i for i, t in enumerate(vocab)}
    names = list(vocab)
    words = [[ids[w[0]], *(ids[PREFIX + c] for c in w[1:])] for w in word_counts]
    counts = list(word_counts.values())
    token_count = [0] * len(names)  # how often each token occurs in the current segmentation
    pair_count: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}  # pair -> words it occurs in
    partners: dict[int, set[tuple[int, int]]] = {}  # token -> pairs that contain it
    for k, (w, c) in enumerate(zip(words, counts)):
        for t in w:
            token_count[t] += c
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + c
            where.setdefault(p, set()).add(k)
    for a, b in pair_count:
        partners.setdefault(a, set()).add((a, b))
        partners.setdefault(b, set()).add((a, b))

    log = math.log
    log_total = log(sum(token_count))
    log_count = [log(n) if n else 0.0 for n in token_count]

    def score(p: tuple[int, int]) -> float:
        n = pair_count[p]
        if scoring == "likelihood":  # n * log(n * N / (count(a) * count(b))): count times PMI
            return n * (log(n) + log_total - log_count[p[0]] - log_count[p[1]])
        if scoring == "ratio":
            return n / (token_count[p[0]] * token_count[p[1]])
        return float(n)

    heap = [(-score(p), p) for p in pair_count]
    heapq.heapify(heap)
    merges: list[str] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=vocab_size - len(names), desc="merges")
    while len(names) < vocab_size and heap:
        neg, p = heapq.heappop(heap)
        if p not in pair_count or -neg != score(p):
            continue  # stale: a fresher entry for this pair was pushed when its score changed
        if pair_count[p] < min_pair_count:
            break
        a, b = p
        name = names[a] + (names[b][len(PREFIX) :] if names[b].startswith(PREFIX) else names[b])
        new = len(names)
        names.append(name)
        token_count.append(0)
        merges.append(name)
        touched: set[tuple[int, int]] = set()
        for k in where.pop(p):
            w, c = words[k], counts[k]
            merged, i, n = [], 0, len(w)
            while i < n:
                if w[i] == a and i + 1 < n and w[i + 1] == b:
                    merged.append(new)
                    i += 2
                else:
                    merged.append(w[i])
                    i += 1
            if len(merged) == n:
                continue  # the pair left this word in an earlier merge
            times = n - len(merged)
            token_count[a] -= c * times
            token_count[b] -= c * times
            token_count[new] += c * times
            for q in zip(w, w[1:]):
                pair_count[q] -= c
                touched.add(q)
            for q in zip(merged, merged[1:]):
                pair_count[q] = pair_count.get(q, 0) + c
                where.setdefault(q, set()).add(k)
                touched.add(q)
            words[k] = merged
        log_count.append(0.0)
        for t in (a, b, new):
            log_count[t] = log(token_count[t]) if token_count[t] > 0 else 0.0
        for q in touched:
            if pair_count[q] <= 0:
                del pair_count[q]
                where.pop(q, None)
            else:
                partners.setdefault(q[0], set()).add(q)
                partners.setdefault(q[1], set()).add(q)
        if scoring != "frequency":  # every pair holding a or b scores differently now that a and b are rarer
            for t in (a, b):
                held = partners.get(t)
                if held:
                    held.difference_update([q for q in held if q not in pair_count])
                    touched |= held
        for q in touched:
            if q in pair_count:
                heapq.heappush(heap, (-score(q), q))
        if len(heap) > 4 * len(pair_count) + 100_000:  # drop the stale entries now and then
            heap = [(-score(q), q) for q in pair_count]
            heapq.heapify(heap)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


# ---------------------------------------------------------------------------------------------------------------
# One training step, written plainly (the notebook's version; ``train_wordpiece`` does the same incrementally)


def split_words(word_counts: dict[str, int]) -> dict[str, list[str]]:
    """Each word as its characters, continuations marked: 'hug' -> ['h', '##u', '##g']."""
    return {w: [w[0], *(PREFIX + c for c in w[1:])] for w in word_counts}


def pair_scores(
    splits: dict[str, list[str]], word_counts: dict[str, int], total: int | None = None, scoring: str = "likelihood"
) -> dict[tuple[str, str], float]:
    """Score every adjacent pair of the current segmentation.

    likelihood: ``n_ab * log(n_ab * N / (n_a * n_b))``, with N the number of symbols before any merge (``total``;
    by default the current number); ratio: ``n_ab / (n_a * n_b)``; frequency: ``n_ab``.
    """
    token_count: Counter[str] = Counter()
    pair_count: Counter[tuple[str, str]] = Counter()
    for w, pieces in splits.items():
        c = word_counts[w]
        for t in pieces:
            token_count[t] += c
        for p in zip(pieces, pieces[1:]):
            pair_count[p] += c
    log_total = math.log(total if total is not None else sum(token_count.values()))
    scores = {}
    for (a, b), n in pair_count.items():
        if scoring == "likelihood":
            scores[a, b] = n * (math.log(n) + log_total - math.log(token_count[a]) - math.log(token_count[b]))
        elif scoring == "ratio":
            scores[a, b] = n / (token_count[a] * token_count[b])
        else:
            scores[a, b] = float(n)
    return scores


def merge_pair(splits: dict[str, list[str]], a: str, b: str) -> dict[str, list[str]]:
    """Replace every adjacent (a, b), left to right, by the merged token (``##`` of b dropped)."""
    merged_token = a + (b[len(PREFIX) :] if b.startswith(PREFIX) else b)
    out = {}
    for w, pieces in splits.items():
        new, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b:
                new.append(merged_token)
                i += 2
            else:
                new.append(pieces[i])
                i += 1
        out[w] = new
    return out
