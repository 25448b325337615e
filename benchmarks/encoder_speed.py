"""minibert's encoder against transformers' BertModel (sdpa), same weights, same inputs, one run.

    python benchmarks/encoder_speed.py [--preset bert-base] [--batch 8] [--threads 1] [--repeats 7]

Prints the median forward time at sequence lengths 128 and 512 and the speed ratio (transformers / minibert;
above 1.0 means minibert is faster), of the medians and of the best runs (the least-disturbed ones, as timeit
reports). Runs are interleaved so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import torch
from transformers import BertModel

from minibert import hf, preset
from minibert.model import Encoder


def timed_pair(fn_a, fn_b, repeats: int) -> tuple[list[float], list[float]]:
    """Times of two functions, run alternately so that machine noise hits both alike."""
    fn_a(), fn_b()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, ta), (fn_b, tb)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return ta, tb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="bert-base")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--padded", action="store_true", help="pad a quarter of each batch (exercises the mask)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    config = preset(args.preset, hidden_dropout=0.0, attention_dropout=0.0)
    mine = Encoder(config).eval()
    ref_cfg = hf.bert_config_to_hf(config)
    from transformers import BertConfig

    ref = BertModel(BertConfig(**ref_cfg, attn_implementation="sdpa")).eval()
    sd = {"encoder." + k: v for k, v in mine.state_dict().items()}
    ref.load_state_dict({k.removeprefix("bert."): v for k, v in hf.minibert_state_dict_to_bert(sd, config).items()
                         if k.startswith("bert.")}, strict=False)  # fmt: skip

    print(f"{args.preset}: {mine.num_parameters() / 1e6:.1f}M parameters, batch {args.batch}, "
          f"{args.threads} thread(s), torch {torch.__version__}")  # fmt: skip
    print(f"{'length':>6} {'transformers s':>15} {'minibert s':>11} {'ratio':>6} {'best-run ratio':>15}")
    for T in args.lengths:
        g = torch.Generator().manual_seed(T)
        ids = torch.randint(1, config.vocab_size, (args.batch, T), generator=g)
        mask = torch.ones_like(ids)
        if args.padded:
            mask[: args.batch // 4, T // 2 :] = 0
        with torch.inference_mode():
            a = ref(input_ids=ids, attention_mask=mask).last_hidden_state
            b = mine(ids, mask).last_hidden_state
            diff = (a - b)[mask.bool()].abs().max().item()
            ta, tb = timed_pair(partial(ref, input_ids=ids, attention_mask=mask), partial(mine, ids, mask),
                                       args.repeats)  # fmt: skip
        t_ref, t_mine = statistics.median(ta), statistics.median(tb)
        best = min(ta) / min(tb)
        ratios = f"{t_ref / t_mine:>5.2f}x {best:>14.2f}x"
        print(f"{T:>6} {t_ref:>15.4f} {t_mine:>11.4f} {ratios}   (max abs diff {diff:.1e})")


if __name__ == "__main__":
    main()
