"""Unpadding on real text: a batch of Wikipedia articles of mixed length, padded vs unpadded, same model.

A padded batch spends every layer's work on the padding of its short sequences. Unpadded, the real tokens of
all sequences are concatenated into one stream: the linear layers see only real tokens, local layers attend in
windows that stop at sequence boundaries, and global layers attend within each sequence.

The batch: ``--batch`` articles drawn (seeded) from the English Wikipedia excerpt (minibert.text.wikipedia()),
each tokenized with BERT's WordPiece vocabulary and cut to ``--max-length`` tokens, as ModernBERT would take
them. The model: the ``modernbert-mini`` preset with that vocabulary. Both ways run in one process, interleaved,
after one warm-up each; the best of ``--repeats`` runs is reported (the least-disturbed run, as timeit does).
With one thread (the default) the ratio is taken from CPU time, which is what the wall clock shows on an idle
machine and hardly moves when other programs compete for the cores; with more threads, from the wall clock.

    python benchmarks/unpadding.py                         # 16 articles of up to 8192 tokens, one thread
    python benchmarks/unpadding.py --batch 32 --max-length 2048 --threads 2
"""

from __future__ import annotations

import argparse

import torch

from minibert import hf, preset, seed_everything
from minibert.config import pad_vocab_size
from minibert.course import interleaved, load_average, steady_clock
from minibert.encoder import Encoder
from minibert.text import BertTokenizer, wikipedia


def article_batch(batch: int, max_length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(B, T) ids and attention mask for ``batch`` articles drawn at random, each cut to ``max_length``."""
    tok = BertTokenizer.from_pretrained(hf.minilm_path())
    articles = wikipedia()
    g = torch.Generator().manual_seed(seed)
    chosen = [articles[i] for i in torch.randperm(len(articles), generator=g)[:batch].tolist()]
    texts = ["\n".join(a.paragraphs) for a in chosen]
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"], [a.title for a in chosen]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-length", type=int, default=8192)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    seed_everything(0)

    ids, mask, titles = article_batch(args.batch, args.max_length)
    lengths = mask.sum(1)
    B, T = ids.shape
    real = int(lengths.sum())
    print(f"{B} articles, {real:,} real tokens in a {B} x {T} batch: {1 - real / (B * T):.0%} of it padding")
    print(f"lengths: min {int(lengths.min())}, median {int(lengths.median())}, max {int(lengths.max())}")
    # the cost of global attention grows with length squared: the padded batch pays T^2 per sequence
    print(f"global attention work, padded / unpadded: {B * T**2 / float((lengths.double() ** 2).sum()):.2f}x")

    model = Encoder(preset("modernbert-mini", vocab_size=pad_vocab_size(30522), pad_token_id=0)).eval()
    print(f"model: modernbert-mini, {model.num_parameters() / 1e6:.1f}M parameters, {args.threads} thread(s)")
    print(f"load average before: {load_average()}\n")

    @torch.no_grad()
    def run(unpad: bool) -> torch.Tensor:
        return model(ids, mask, unpad=unpad).last_hidden_state

    padded_out = run(False)  # warm-up, and the outputs to compare
    unpadded_out = run(True)
    diff = (padded_out - unpadded_out)[mask.bool()].abs().max().item()
    times = interleaved({False: lambda: run(False), True: lambda: run(True)}, repeats=args.repeats)
    clock = steady_clock(args.threads)
    padded, unpadded = times[False].best(clock), times[True].best(clock)
    medians = times[False].median(clock) / times[True].median(clock)
    basis = "CPU" if clock == "cpu" else "wall-clock"
    print(f"{'':<10} {basis + ' s':>9}   wall s")
    print(f"{'padded':<10} {padded:9.3f} {times[False].best():8.3f}   ({B * T / padded:,.0f} token slots/s)")
    print(f"{'unpadded':<10} {unpadded:9.3f} {times[True].best():8.3f}   ({real / unpadded:,.0f} real tokens/s)")
    print(
        f"speed-up: {padded / unpadded:.2f}x (ratio of medians {medians:.2f}x); same outputs on the real tokens: "
        f"max abs diff {diff:.1e}"
    )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
