"""Exercises and questions of chapter 03, WordPiece and byte-level BPE (solutions/03_wordpiece.ipynb)."""

from __future__ import annotations

import functools
from collections import Counter

from ...hf import minilm_path
from ...text import (
    BertTokenizer,
    basic_tokenize,
    merge_pair,
    normalize,
    pair_scores,
    split_words,
    train_bpe,
    wikipedia_lines,
    wordpiece,
)
from ...text.bpe import bytes_to_unicode
from ..spec import Case, Exercise, Question


@functools.lru_cache(maxsize=1)
def _bert_vocab() -> dict[str, int]:
    return BertTokenizer.from_pretrained(minilm_path()).vocab


@functools.lru_cache(maxsize=1)
def _lines() -> tuple[str, ...]:
    return tuple(wikipedia_lines("en")[:40])  # a few paragraphs of the Wikipedia excerpt


@functools.lru_cache(maxsize=1)
def _bpe():
    return train_bpe(list(_lines()), 600)  # a small byte-level BPE trained on the paragraphs


WORDS = ["tokenization", "unaffable", "the", "hippopotamus", "zzzqx", "ﬃ", "a" * 101, "a" * 100, "ελληνικα", "1999"]
LABELS = {"zzzqx": "no piece matches 'zzzqx'", "a" * 101: "101 characters", "a" * 100: "exactly 100 characters"}


def _text_cases() -> list:
    texts = ["it's $5.", "", "  spaces   everywhere ", "a+b=c", "...", "e-mail: x@y.org (see 2.1)"]
    return [Case((t,)) for t in texts] + [Case((normalize(line),), "a paragraph") for line in _lines()[:10]]


def _real_counts() -> Counter:
    return Counter(w for line in _lines()[:5] for w in basic_tokenize(line))


def _score_cases() -> list:
    toy = Counter({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5})
    cases = []
    for counts, (a, b), name in ((toy, ("##u", "##g"), "toy"), (_real_counts(), ("t", "##h"), "Wikipedia")):
        splits = split_words(counts)
        total = sum(len(s) * counts[w] for w, s in splits.items())
        cases.append(Case((splits, counts, total), f"{name} words"))
        cases.append(Case((merge_pair(splits, a, b), counts, total), f"{name} words after merging {a} {b}"))
    return cases


def _merge_cases() -> list:
    toy = split_words({"hug": 1, "pug": 1, "hugs": 1, "aaaa": 1, "u": 1})
    return [
        Case((toy, "##u", "##g")),
        Case((toy, "##a", "##a"), "overlapping pairs in 'aaaa'"),
        Case((merge_pair(toy, "##u", "##g"), "h", "##ug")),
        Case((split_words(_real_counts()), "t", "##h"), "Wikipedia words"),
    ]


def _bpe_cases() -> list:
    pieces = ["Ġthe", "Ġlowest", "Ġantidisestablishmentarianism", "ĠAnarchism", "1999", "Ġaaaaaa", "x"]
    return [(p, _bpe().ranks) for p in pieces]


ITEMS = [
    Exercise(
        id="03.1",
        function="wordpiece_encode",
        cases=lambda: [Case((w, _bert_vocab()), LABELS.get(w, "")) for w in WORDS],
        reference=wordpiece,
        args=("word", "vocab"),
        hints=(
            "Greedy: from the current position, take the longest piece the vocabulary knows, then continue after "
            "it; pieces after the first are written with '##'. If no piece fits somewhere, the whole word is [UNK].",
            "Loop end from len(word) down to start + 1, and test word[start:end] (with '##' in front when start > "
            "0); when none is in vocab, return ['[UNK]']. Check the length limit first.",
            "for end in range(len(word), start, -1): piece = word[start:end] if start == 0 else '##' + "
            "word[start:end]; if piece in vocab: break — else (no break): return ['[UNK]']",
        ),
    ),
    Exercise(
        id="03.2",
        function="split_on_punctuation",
        cases=_text_cases,
        reference=basic_tokenize,
        args=("text",),
        index="word",
        hints=(
            "Walk the text one character at a time, building the current word; spaces end it and vanish, "
            "punctuation ends it and becomes a word of its own.",
            "Keep a string 'current'. On a space or is_punctuation(ch): append current if it is not empty, reset "
            "it, and append ch unless it is a space. Otherwise add ch to current. Do not forget the last word.",
            "if ch == ' ' or is_punctuation(ch): flush current; if ch != ' ': words.append(ch) — else: current += "
            "ch; after the loop: if current: words.append(current)",
        ),
    ),
    Exercise(
        id="03.3",
        function="likelihood_scores",
        cases=_score_cases,
        reference=lambda s, c, t: pair_scores(s, c, t, scoring="likelihood"),
        args=("splits", "word_counts", "total"),
        hints=(
            "Each word appears word_counts[word] times, so each of its tokens and adjacent pairs counts that many "
            "times; the score compares how often a pair occurs with how often its parts do.",
            "Two Counters: for every word, add its count to each token and to each pair of zip(pieces, pieces[1:]). "
            "Then compute the formula for every pair, with math.log, in the order written.",
            "{(a, b): n * (math.log(n) + math.log(total) - math.log(token_count[a]) - math.log(token_count[b])) "
            "for (a, b), n in pair_count.items()}",
        ),
    ),
    Exercise(
        id="03.4",
        function="merge",
        cases=_merge_cases,
        reference=merge_pair,
        args=("splits", "a", "b"),
        hints=(
            "Walk each word's pieces left to right; where a is followed by b, emit one new token and jump over "
            "both; elsewhere copy the piece. Build new lists, leaving the old ones as they were.",
            "The new token is a + b without b's leading '##'. Use an index i and a while loop, so that after a "
            "merge you skip two pieces (that is what makes '##a ##a ##a' give '##aa ##a').",
            "if i + 1 < len(pieces) and pieces[i] == a and pieces[i + 1] == b: merged.append(new_token); i += 2 — "
            "else: merged.append(pieces[i]); i += 1",
        ),
    ),
    Exercise(
        id="03.5",
        function="apply_merges",
        cases=_bpe_cases,
        reference=lambda piece, ranks: _bpe().bpe(piece),
        args=("piece", "ranks"),
        hints=(
            "BPE replays its training: the merge learned first is applied first. Repeat: among the adjacent pairs, "
            "find the one with the lowest rank and merge it everywhere; stop when no pair has a rank.",
            "Start from list(piece). Each round, collect (ranks[p], p) for the pairs p of zip(symbols, symbols[1:]) "
            "that are in ranks; if none, stop; else take the min and merge all its occurrences left to right.",
            "pairs = [(ranks[p], p) for p in zip(symbols, symbols[1:]) if p in ranks]; if not pairs: break; "
            "_, (a, b) = min(pairs); then merge as in exercise 03.4, joining a + b",
        ),
    ),
    Question(
        id="03.Q1",
        function="pieces_of_unaffable",
        answer=lambda: len(wordpiece("unaffable", _bert_vocab())),
        rel_tol=0.0,
        abs_tol=0.5,
        hints=("Run your exercise 03.1 (or the tokenizer) on 'unaffable' with bert-base-uncased's vocabulary.",),
        explanation="'unaffable' becomes una ##ffa ##ble: 3 pieces. The greedy longest match takes 'una' first, "
        "not 'un': WordPiece finds the longest piece, not the morphemes.",
    ),
    Question(
        id="03.Q2",
        function="byte_alphabet",
        answer=lambda: len(bytes_to_unicode()),
        rel_tol=0.0,
        abs_tol=0.5,
        hints=("Byte-level BPE starts from one symbol for each possible value of a byte.",),
        explanation="A byte has 256 values, so the alphabet has 256 symbols and no text is ever out of vocabulary: "
        "any character, in any script, is a sequence of bytes (GPT-2 maps them to printable characters, "
        "'Ġ' for the space).",
    ),
]
