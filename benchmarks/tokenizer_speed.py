"""Tokens per second of BERT tokenizers on the same text: minibert, transformers' pure-Python tokenizer, `tokenizers`.

    python benchmarks/tokenizer_speed.py [--lines 0] [--repeats 3]

Every tokenizer encodes the same lines of the Wikipedia excerpt (all 10k paragraphs by default), on one thread, with
the bert-base-uncased vocabulary; the Rust tokenizer gets the whole list in one call, the others one line at a time.
minibert is timed twice: "cold" is a fresh tokenizer (its per-word cache empty), "warm" a second pass over the same
text. Each figure is the median of the repeats, peers interleaved, so the ratios printed at the end compare runs made
under the same load.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread for the Rust tokenizer
os.environ.setdefault("RAYON_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=0, help="lines of the excerpt to encode (0: all)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from minibert.course import interleaved, load_average
    from minibert.hf import minilm_path
    from minibert.text import BertTokenizer, wikipedia_lines

    lines = wikipedia_lines("en")
    lines = lines[: args.lines] if args.lines else lines
    vocab = str(minilm_path() / "vocab.txt")
    n_tokens = sum(len(ids) for ids in map(BertTokenizer.from_vocab_file(vocab).encode, lines)) - 2 * len(lines)
    n_words = sum(len(x.split()) for x in lines)
    print(f"{len(lines)} lines, {n_words} words, {n_tokens} tokens; load average {load_average()}")

    runners = {}

    def minibert_cold():
        tok = BertTokenizer.from_vocab_file(vocab)
        for line in lines:
            tok.encode(line, add_special_tokens=False)

    warm = BertTokenizer.from_vocab_file(vocab)
    runners["minibert (cold cache)"] = minibert_cold
    runners["minibert (warm cache)"] = lambda: [warm.encode(x, add_special_tokens=False) for x in lines]

    try:
        from tokenizers import BertWordPieceTokenizer

        rust = BertWordPieceTokenizer(vocab, lowercase=True)
        runners["tokenizers (Rust, 1 thread)"] = lambda: rust.encode_batch(lines, add_special_tokens=False)
        if hasattr(rust._tokenizer, "encode_batch_fast"):  # skips the offsets: the fastest Rust path
            fast = rust._tokenizer
            runners["tokenizers (Rust, 1 thread, fast)"] = lambda: fast.encode_batch_fast(
                lines, add_special_tokens=False
            )
    except ImportError:
        print("tokenizers is not installed: skipped")
    try:
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

        legacy = BertTokenizerLegacy(vocab)

        def python_legacy():
            for line in lines:
                legacy.convert_tokens_to_ids(legacy.tokenize(line))

        runners["transformers pure Python"] = python_legacy
    except ImportError:
        print("transformers' pure-Python BertTokenizerLegacy is not available: skipped")

    for line in lines:  # fills the warm tokenizer's cache
        warm.encode(line)
    times = interleaved(runners, repeats=args.repeats)
    speed = {name: n_tokens / t.median() for name, t in times.items()}
    for name, s in speed.items():
        median = times[name].median()
        print(f"{name:36s} {s / 1e3:8.1f}k tokens/s   (median of {args.repeats}: {median:.3f} s)")
    mine = speed["minibert (cold cache)"]
    peers = [("transformers pure Python", 3.0), ("tokenizers (Rust, 1 thread)", 0.5)]
    peers += [("tokenizers (Rust, 1 thread, fast)", 0.5)]
    for peer, target in peers:
        if peer in speed:
            ratio = mine / speed[peer]
            verdict = "meets" if ratio >= target else "MISSES"
            print(f"minibert (cold) / {peer}: {ratio:.2f}x  ({verdict} the target of {target}x)")
            print(f"minibert (warm) / {peer}: {speed['minibert (warm cache)'] / speed[peer]:.2f}x")


if __name__ == "__main__":
    main()
