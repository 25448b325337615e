"""minibert's encoder against transformers' BertModel (sdpa), same weights, same inputs, one run.

    python benchmarks/encoder_speed.py [--preset bert-base] [--batch 8] [--threads 1] [--rounds 3] [--repeats 3]

Prints the median forward time at sequence lengths 128 and 512 and the speed ratio (transformers / minibert;
above 1.0 means minibert is faster), of the medians and of the best runs (the least-disturbed ones, as timeit
reports). Each timing runs in a fresh process that holds one model, as a user's program would: two models in one
process share the memory allocator, and the large activations one of them frees change what the other's
allocations cost. Processes alternate (transformers, minibert, transformers, ...) so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from transformers import BertConfig, BertModel

from minibert import hf, preset
from minibert.course import fresh_process, report, timings
from minibert.encoder import Encoder


def build(name: str, batch: int, T: int, padded: bool):
    """Both models with the same weights, and one batch of inputs."""
    torch.manual_seed(0)
    config = preset(name, hidden_dropout=0.0, attention_dropout=0.0)
    mine = Encoder(config).eval()
    ref = BertModel(BertConfig(**hf.bert_config_to_hf(config), attn_implementation="sdpa")).eval()
    sd = {"encoder." + k: v for k, v in mine.state_dict().items()}
    ref.load_state_dict({k.removeprefix("bert."): v for k, v in hf.minibert_state_dict_to_bert(sd, config).items()
                         if k.startswith("bert.")}, strict=False)  # fmt: skip
    g = torch.Generator().manual_seed(T)
    ids = torch.randint(1, config.vocab_size, (batch, T), generator=g)
    mask = torch.ones_like(ids)
    if padded:
        mask[: batch // 4, T // 2 :] = 0
    return mine, ref, ids, mask


def worker(args) -> None:
    """Time one model (the other is dropped before timing) and report the seconds of each forward pass."""
    mine, ref, ids, mask = build(args.preset, args.batch, args.length, args.padded)
    if args.worker == "transformers":
        del mine
        fn = lambda: ref(input_ids=ids, attention_mask=mask)  # noqa: E731
    else:
        del ref
        fn = lambda: mine(ids, mask)  # noqa: E731
    with torch.inference_mode():
        report(timings(fn, repeats=args.repeats, warmup=1).seconds())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bert-base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="processes per model and length")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes per process")
    parser.add_argument("--padded", action="store_true", help="pad a quarter of each batch (exercises the mask)")
    parser.add_argument("--worker", choices=["transformers", "minibert"], help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        return worker(args)

    for T in args.lengths:
        mine, ref, ids, mask = build(args.preset, args.batch, T, args.padded)
        if T == args.lengths[0]:
            print(f"{args.preset}: {mine.num_parameters() / 1e6:.1f}M parameters, batch {args.batch}, "
                  f"{args.threads} thread(s), torch {torch.__version__}, "
                  f"{args.rounds} x {args.repeats} runs each")  # fmt: skip
            print(f"{'length':>6} {'transformers s':>15} {'minibert s':>11} {'ratio':>6} {'best-run ratio':>15}")
        with torch.inference_mode():
            a = ref(input_ids=ids, attention_mask=mask).last_hidden_state
            b = mine(ids, mask).last_hidden_state
        diff = (a - b)[mask.bool()].abs().max().item()
        del mine, ref, a, b
        times = {"transformers": [], "minibert": []}
        for _ in range(args.rounds):
            for who in times:
                flags = ["--worker", who, "--length", T, "--preset", args.preset, "--batch", args.batch,
                         "--threads", args.threads, "--repeats", args.repeats] + ["--padded"] * args.padded  # fmt: skip
                times[who] += fresh_process(__file__, *flags, threads=args.threads)
        ta, tb = times["transformers"], times["minibert"]
        t_ref, t_mine = statistics.median(ta), statistics.median(tb)
        ratios = f"{t_ref / t_mine:>5.2f}x {min(ta) / min(tb):>14.2f}x"
        print(f"{T:>6} {t_ref:>15.4f} {t_mine:>11.4f} {ratios}   (max abs diff {diff:.1e})")


if __name__ == "__main__":
    main()
