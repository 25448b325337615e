"""Training subword vocabularies: WordPiece and byte-level BPE both merge the best pair of symbols, again and again.

A trainer counts the words of a corpus, splits each word into symbols and merges, again and again, the adjacent pair
with the best score into one new symbol, until the vocabulary has the size asked for. WordPiece and BPE differ only
in the arguments of ``learn_merges``:

- the split of a word into symbols: 'hug' -> ['h', '##u', '##g'] for WordPiece (continuations marked), the byte
  symbols of 'Ġhug' for BPE;
- the first symbols, whose order sets the ids (special tokens, then the alphabet, sorted): of two pairs with the
  same score, the one of smaller ids is merged first, as in ``tokenizers``;
- the score of a pair: WordPiece's likelihood gain (or the ratio), or its count (BPE, and ``tokenizers``' WordPiece);
- the name of a merged symbol: 'h' + '##u' -> 'hu' (the continuation mark dropped), 'Ġ' + 't' -> 'Ġt'.

``split_words``, ``pair_scores`` and ``merge_pair`` are one step written plainly, as the notebook builds it: every
pair counted and scored anew after each merge, a pass over the whole corpus per merge. ``learn_merges`` gives the
same merges without the passes: it keeps the counts up to date, visits only the words that hold the merged pair, and
keeps the scores in a max-heap.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from ..runtime import progress_bar
from .bpe import ByteLevelBPE, bytes_to_unicode, pre_tokenize
from .normalize import basic_tokenize
from .wordpiece import PREFIX, SPECIAL_TOKENS, BertTokenizer

Pair = tuple[int, int]  # two adjacent symbols, by id

# ---------------------------------------------------------------------------------------------------------------
# One training step, written plainly (the notebook's version; ``learn_merges`` does the same incrementally)


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


# ---------------------------------------------------------------------------------------------------------------
# Learning merges incrementally: what both trainers run


class PairCounts:
    """Words as lists of symbol ids, with how often each symbol and each adjacent pair occurs in the corpus.

    ``where`` maps each pair to the words that hold it: a merge visits only those words, and changes only the counts
    of the pairs around each merged occurrence. ``holding`` maps each symbol to the pairs it is part of, for scores
    that depend on the symbols' counts (kept only when asked for).
    """

    def __init__(self, words: list[list[int]], counts: list[int], n_symbols: int, index_symbols: bool = False):
        self.words, self.counts = words, counts  # counts[k]: how often word k occurs in the corpus
        self.symbol_count = symbol_count = [0] * n_symbols  # symbol id -> occurrences
        self.pair_count: dict[Pair, int] = {}  # pair -> occurrences; a pair that no longer occurs is dropped
        self.where: dict[Pair, set[int]] = {}  # pair -> the words holding it (a word may have lost it since)
        pair_count, where = self.pair_count, self.where
        for k, (w, c) in enumerate(zip(words, counts)):
            for s in w:
                symbol_count[s] += c
            for p in zip(w, w[1:]):
                pair_count[p] = pair_count.get(p, 0) + c
                where.setdefault(p, set()).add(k)
        self.holding: dict[int, set[Pair]] | None = None
        if index_symbols:
            self.holding = {}
            self._index(pair_count)

    def merge(self, a: int, b: int, new: int) -> set[Pair]:
        """Replace each (a, b) by ``new``, left to right, in every word; return the pairs that formed around it."""
        if new == len(self.symbol_count):
            self.symbol_count.append(0)
        words, counts, pair_count, where = self.words, self.counts, self.pair_count, self.where
        formed: set[Pair] = set()
        merged = 0  # occurrences of (a, b) merged
        for k in where.pop((a, b)):
            w, c = words[k], counts[k]
            length = len(w)
            for p, change in _merge_word(w, a, b, new):
                n = pair_count.get(p, 0) + change * c
                if n:
                    pair_count[p] = n
                else:  # the pair no longer occurs
                    del pair_count[p]
                    where.pop(p, None)
                if change > 0:
                    formed.add(p)
                    where.setdefault(p, set()).add(k)
            merged += (length - len(w)) * c
        pair_count.pop((a, b), None)
        self.symbol_count[a] -= merged
        self.symbol_count[b] -= merged
        self.symbol_count[new] += merged
        formed = {p for p in formed if p in pair_count}
        if self.holding is not None:
            self._index(formed)
        return formed

    def pairs_holding(self, s: int) -> set[Pair]:
        """The pairs that symbol ``s`` is part of (needs ``index_symbols``)."""
        held = self.holding.get(s, set())
        held.difference_update([p for p in held if p not in self.pair_count])
        return held

    def _index(self, pairs: Iterable[Pair]) -> None:
        for p in pairs:
            self.holding.setdefault(p[0], set()).add(p)
            self.holding.setdefault(p[1], set()).add(p)


def _merge_word(w: list[int], a: int, b: int, new: int) -> list[tuple[Pair, int]]:
    """Merge (a, b) in place, left to right; return the pair-count changes around each merge."""
    changes, i = [], 0
    while i < len(w):
        if w[i] == a and i + 1 < len(w) and w[i + 1] == b:
            if i > 0:
                changes += [((w[i - 1], a), -1), ((w[i - 1], new), 1)]
            w[i : i + 2] = [new]
            if i < len(w) - 1:
                changes += [((b, w[i + 1]), -1), ((new, w[i + 1]), 1)]
        i += 1
    return changes


def _scorer(scoring: str, corpus: PairCounts) -> Callable[[Pair], float]:
    """The score of a pair from the current counts, computed as ``pair_scores`` computes it."""
    pair, symbol = corpus.pair_count, corpus.symbol_count
    log, log_total = math.log, math.log(sum(symbol))  # N: the number of symbols before any merge

    def likelihood(p: Pair) -> float:
        n = pair[p]
        return n * (log(n) + log_total - log(symbol[p[0]]) - log(symbol[p[1]]))

    def ratio(p: Pair) -> float:
        return pair[p] / (symbol[p[0]] * symbol[p[1]])

    frequency = pair.__getitem__  # the count itself
    return {"likelihood": likelihood, "ratio": ratio, "frequency": frequency}[scoring]


def learn_merges(
    splits: dict[str, list[str]],
    word_counts: dict[str, int],
    symbols: Sequence[str],
    vocab_size: int,
    join: Callable[[str, str], str] = operator.add,
    scoring: str = "frequency",
    min_count: int = 1,
    progress: bool = False,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Merge the best pair until there are ``vocab_size`` symbols; return the symbols (in id order) and the merges.

    ``splits`` holds each word as its first symbols, ``symbols`` those symbols in id order, ``join`` names a merged
    pair (a merge that spells an existing symbol gives that symbol, as in ``tokenizers``). ``scoring``: "frequency",
    "likelihood" or "ratio", as in ``pair_scores``. Stops early when the best pair occurs fewer than ``min_count``
    times.

    The heap holds (-score, pair): the best score first, then the pair of smallest ids. A merge lowers the counts of
    the pairs it breaks (their heap entries are then too high: such an entry goes back in with its current score when
    it comes out on top) and forms new pairs, pushed with their scores. The likelihood and the ratio also rise for
    every pair holding a or b, since a and b become rarer: those are pushed again too.
    """
    symbols = list(symbols)
    ids = {s: i for i, s in enumerate(symbols)}
    words = [[ids[s] for s in splits[w]] for w in word_counts]
    corpus = PairCounts(words, list(word_counts.values()), len(symbols), index_symbols=scoring != "frequency")
    score = _scorer(scoring, corpus)
    heap = [(-score(p), p) for p in corpus.pair_count]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    bar = progress_bar(vocab_size - len(symbols), "merges", not progress)
    while len(symbols) < vocab_size and heap:
        neg, pair = heapq.heappop(heap)
        if pair not in corpus.pair_count:
            continue  # merged already, or no longer formed anywhere
        current = score(pair)
        if -neg != current:
            heapq.heappush(heap, (-current, pair))  # its score fell since it was pushed
            continue
        if corpus.pair_count[pair] < min_count:
            break
        a, b = pair
        name = join(symbols[a], symbols[b])
        if name not in ids:
            ids[name] = len(symbols)
            symbols.append(name)
        merges.append((symbols[a], symbols[b]))
        changed = corpus.merge(a, b, ids[name])  # the pairs that formed
        if corpus.holding is not None:  # the likelihood and the ratio rise for every pair holding a or b
            changed |= corpus.pairs_holding(a) | corpus.pairs_holding(b)
        for p in changed:
            heapq.heappush(heap, (-score(p), p))
        if len(heap) > 4 * len(corpus.pair_count) + 100_000:  # drop the stale entries now and then
            heap = [(-score(p), p) for p in corpus.pair_count]
            heapq.heapify(heap)
        bar.update()
    bar.close()
    return symbols, merges


# ---------------------------------------------------------------------------------------------------------------
# The two trainers


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
    alphabet = _alphabet_vocab(word_counts, special_tokens)
    if vocab_size < len(alphabet):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the alphabet and special tokens ({len(alphabet)})")
    vocab, _ = learn_merges(
        split_words(word_counts), word_counts, alphabet, vocab_size, _join_pieces, scoring, min_pair_count, progress
    )
    return BertTokenizer(vocab, lowercase=lowercase, strip_accents=strip_accents)


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


def _join_pieces(a: str, b: str) -> str:
    """'h' + '##u' -> 'hu': the merged piece starts a word if its first part does."""
    return a + b.removeprefix(PREFIX)


def train_bpe(
    lines: Iterable[str],
    vocab_size: int,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = (),
    add_prefix_space: bool = False,
    progress: bool = False,
) -> ByteLevelBPE:
    """Learn a byte-level BPE of ``vocab_size`` tokens, as ``tokenizers``' ByteLevelBPETokenizer trains one.

    Vocabulary: the special tokens, the 256 byte symbols (sorted), then one token per merge. Each step merges the
    most frequent adjacent pair (ties: the pair of smallest ids), until the vocabulary is full or no pair occurs
    ``min_frequency`` times.
    """
    word_counts: Counter[str] = Counter()
    for line in lines:
        word_counts.update(pre_tokenize(line, add_prefix_space))
    symbols = list(dict.fromkeys(special_tokens))
    alphabet = set(bytes_to_unicode().values())
    for w in word_counts:
        alphabet.update(w)
    symbols += sorted(alphabet - set(symbols))
    if vocab_size < len(symbols):
        raise ValueError(f"vocab_size={vocab_size} is smaller than the 256 byte symbols and the special tokens")
    splits = {w: list(w) for w in word_counts}
    vocab, merges = learn_merges(
        splits, word_counts, symbols, vocab_size, operator.add, "frequency", min_frequency, progress
    )
    return ByteLevelBPE({t: i for i, t in enumerate(vocab)}, merges, add_prefix_space, special_tokens)
