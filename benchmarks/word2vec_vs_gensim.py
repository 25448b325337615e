"""minibert's word2vec against gensim's, trained on the same tokens in the same run: time and quality.

    python benchmarks/word2vec_vs_gensim.py [--workers 2] [--repeats 5] [--model skipgram|cbow] [--epochs 5]

Both train on the Wikipedia excerpt (paragraphs as sentences, lower-cased words) with the same settings: 100
dimensions, window 5, 5 negatives, min_count 5, sample 1e-3, alpha 0.025 to 0.0001. Runs alternate (gensim,
minibert, gensim, ...) so both see the same load; times are medians over the repeats, qualities means (each repeat
has its own seed). Wall time is what the targets are about; CPU time (all threads) shows the work done and hardly
moves when other programs share the machine. Both models are scored with minibert.embeddings' evaluation, which
counts out-of-vocabulary pairs the way gensim's does (the test suite checks the figures are equal).

Targets: minibert's wordsim353 Spearman at least gensim's minus 0.02, and its wall time at most 1.5x gensim's.
"""

from __future__ import annotations

import argparse
import statistics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="threads for both (gensim workers, minibert workers)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", choices=("skipgram", "cbow"), default="skipgram")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="device for minibert (gensim runs on the CPU)")
    args = parser.parse_args()

    import torch
    from gensim.models import Word2Vec as GensimWord2Vec

    from minibert.course import Timings, load_average, timed
    from minibert.embeddings import KeyedVectors, Word2Vec, Word2VecConfig, evaluate, wikipedia_sentences

    sentences = wikipedia_sentences("en")
    n_words = sum(map(len, sentences))
    settings = dict(dim=100, window=5, negative=5, min_count=5, sample=1e-3, epochs=args.epochs, alpha=0.025)
    print(
        f"{len(sentences)} paragraphs, {n_words} words; {args.model}, {settings}, workers {args.workers}; "
        f"torch {torch.__version__}, load average {load_average()}"
    )

    def run_gensim(seed: int):
        model = GensimWord2Vec(
            sentences,
            vector_size=settings["dim"],
            window=settings["window"],
            negative=settings["negative"],
            min_count=settings["min_count"],
            sample=settings["sample"],
            epochs=settings["epochs"],
            alpha=settings["alpha"],
            min_alpha=1e-4,
            sg=int(args.model == "skipgram"),
            hs=0,
            workers=args.workers,
            seed=seed,
        )
        return KeyedVectors.from_gensim(model.wv)

    def run_minibert(seed: int):
        config = Word2VecConfig(**settings, model=args.model, workers=args.workers, seed=seed)
        model = Word2Vec.from_sentences(sentences, config, device=args.device)
        model.train(sentences)
        return model.wv

    runners = {"gensim": run_gensim, "minibert": run_minibert}
    times = {name: Timings() for name in runners}
    qualities = {name: [] for name in runners}
    for seed in range(args.repeats):
        for name, run in runners.items():
            kv, t = timed(run, seed)
            times[name].append(t)
            q = evaluate(kv)
            qualities[name].append(q)
            print(
                f"  seed {seed} {name:8s} {t.wall:6.2f} s wall {t.cpu:6.2f} s CPU  wordsim353 {q['wordsim353']:.3f} "
                f"simlex999 {q['simlex999']:.3f} analogies {q['analogies']:.2%}"
            )

    summary = {}
    for name, qs in qualities.items():
        wall, cpu = times[name].median(), times[name].median("cpu")
        quality = {k: statistics.mean(q[k] for q in qs) for k in qs[0]}
        summary[name] = dict(wall=wall, cpu=cpu, words_per_s=n_words * args.epochs / wall, **quality)
    header = ["wall s", "CPU s", "words/s", "wordsim353", "simlex999", "analogies"]
    print(f"\n{'':10s} " + " ".join(f"{h:>10s}" for h in header))
    for name, s in summary.items():
        print(
            f"{name:10s} {s['wall']:10.2f} {s['cpu']:10.2f} {s['words_per_s']:10,.0f} {s['wordsim353']:10.3f} "
            f"{s['simlex999']:10.3f} {s['analogies']:10.2%}"
        )
    m, g = summary["minibert"], summary["gensim"]
    print(
        f"\nminibert / gensim: wall time {m['wall'] / g['wall']:.2f}x, CPU time {m['cpu'] / g['cpu']:.2f}x, "
        f"words/s {m['words_per_s'] / g['words_per_s']:.2f}x"
    )
    print(
        f"quality, minibert - gensim: wordsim353 {m['wordsim353'] - g['wordsim353']:+.3f}, "
        f"simlex999 {m['simlex999'] - g['simlex999']:+.3f}, analogies {m['analogies'] - g['analogies']:+.2%}"
    )
    fast = m["wall"] <= 1.5 * g["wall"]
    good = m["wordsim353"] >= g["wordsim353"] - 0.02
    print(f"targets: wall time <= 1.5x gensim's: {'met' if fast else 'NOT met'}; ", end="")
    print(f"wordsim353 >= gensim's - 0.02: {'met' if good else 'NOT met'}")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
