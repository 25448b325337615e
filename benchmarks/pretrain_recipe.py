"""What each choice of chapter 07's recipe buys: a ladder of recipes, each trained for ten minutes' worth of steps.

Wall-clock budgets mean little on a shared machine, so every recipe is trained for a fixed number of steps on one
thread. That number is what ten minutes on two idle cores buy: --base-steps for the first recipe (chapter 07's
notebook planned 5,326 steps of 128 x 32 tokens for ten minutes there), scaled for each other recipe by how long its
steps take against the first one's, timed here in alternation so that the machine's load hits all alike. Each row is
scored on the same held-out pairs (32 tokens, 15% masked). Rows are written to --json as they finish, so the ladder
can be run one row at a time (--rows). A row with another vocabulary is scored on the same held-out text, cut into
its own pieces: a smaller vocabulary makes each prediction easier (shorter, more frequent pieces), so its accuracy is
not quite the same test.

    python benchmarks/pretrain_recipe.py                       # the whole ladder (hours on one thread)
    python benchmarks/pretrain_recipe.py --rows 0 1            # the first two rows only, added to --json
    python benchmarks/pretrain_recipe.py --list                # the rows
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from dataclasses import replace
from pathlib import Path

import torch


def ladder():
    """(name, recipe): each row adds one change to the row before; the last is chapter 07's recipe."""
    from minibert.pretrain import COURSE_RECIPE, Recipe

    base = Recipe(preset="bert-tiny", vocab_size=8192, phases=((32, 128, 1.0),), lr=2e-3, warmup=0.06, decay=None,
                  dropout=0.0, dupe_factor=1)  # fmt: skip
    rows = [("bert-tiny, 8,192 pieces, 128 x 32 tokens, lr 2e-3, linear decay", base)]
    step = replace(base, dupe_factor=10)
    rows.append(("+ 10 cuts of the data (Google's dupe_factor)", step))
    step = replace(step, phases=((32, 128, 0.9), (128, 32, 0.1)))
    rows.append(("+ the last 10% of the steps on 32 x 128 tokens", step))
    step = replace(step, decay=0.2)
    rows.append(("+ warmup-stable-decay (the last 20% decay, 1-sqrt)", step))
    step = replace(step, vocab_size=4096)
    rows.append(("+ a vocabulary of 4,096 pieces", step))
    step = replace(step, mask_prob=0.2)
    rows.append(("+ 20% of the training tokens masked", step))
    if step != COURSE_RECIPE:
        rows.append(("chapter 07's recipe", COURSE_RECIPE))
    return rows


def step_seconds(recipes, rounds: int = 3, steps: int = 3) -> list[list[float]]:
    """Seconds per step of each phase of each recipe, timed in alternating rounds (the median of the rounds)."""
    import statistics

    from minibert.pretrain import pretraining_tokenizer, recipe_trainer

    trainers = [recipe_trainer(r, pretraining_tokenizer(vocab_size=r.vocab_size), steps=1000, evals=1,
                               max_eval_batches=1, progress=False) for r in recipes]  # fmt: skip
    times = [[[] for _ in r.phases] for r in recipes]
    for _ in range(rounds):
        for t, row in zip(trainers, times):
            for i in range(len(row)):
                row[i].append(t.measure_step_seconds(steps, phase=i))
    return [[statistics.median(ts) for ts in row] for row in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-steps", type=int, default=5326, help="the first recipe's steps in ten minutes")
    parser.add_argument("--rows", type=int, nargs="*", help="which rows to run (default: all)")
    parser.add_argument("--json", default="benchmarks/results/pretrain_recipe.json", help="results, row by row")
    parser.add_argument("--save-model", help="save the last row's model to this folder (a minibert checkpoint)")
    parser.add_argument("--list", action="store_true", help="print the rows and stop")
    args = parser.parse_args()

    rows = ladder()
    if args.list:
        for i, (name, recipe) in enumerate(rows):
            print(f"{i}: {name}\n   {recipe.describe()}")
        return
    from minibert.pretrain import pretraining_tokenizer, recipe_trainer, save_model

    torch.set_num_threads(1)
    chosen = range(len(rows)) if args.rows is None else args.rows
    recipes = [rows[0][1]] + [rows[i][1] for i in chosen if i != 0]
    seconds = dict(zip([0] + [i for i in chosen if i != 0], step_seconds(recipes)))
    base_time = seconds[0][0]
    out = Path(args.json)
    results = json.loads(out.read_text()) if out.is_file() else {"rows": []}
    for i in chosen:
        name, recipe = rows[i]
        per_step = sum(share * t for (*_, share), t in zip(recipe.phases, seconds[i]))
        steps = round(args.base_steps * base_time / per_step)
        load = os.getloadavg()[0]
        tokenizer = pretraining_tokenizer(vocab_size=recipe.vocab_size)
        trainer = recipe_trainer(recipe, tokenizer, steps=steps, evals=1, progress=False)
        trainer.fit()
        final = trainer.evals[-1]
        row = {"name": name, "recipe": recipe.to_dict(), "steps": steps, "step_time_vs_first": per_step / base_time,
               "mlm_acc": final["mlm_acc"], "mlm_loss": final["mlm_loss"], "nsp_acc": final["nsp_acc"],
               "load_average": load, "cpu_minutes": trainer.train_seconds / 60}  # fmt: skip
        print(f"{name}: {steps} steps ({per_step / base_time:.2f}x the first recipe's step time), held-out MLM "
              f"accuracy {final['mlm_acc']:.1%}, NSP {final['nsp_acc']:.1%}", flush=True)  # fmt: skip
        results["rows"] = [r for r in results["rows"] if r["name"] != name] + [row]
        order = [n for n, _ in rows]
        results["rows"].sort(key=lambda r: order.index(r["name"]) if r["name"] in order else len(order))
        results |= {"date": datetime.date.today().isoformat(), "base_steps": args.base_steps,
                    "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), one thread, torch {torch.__version__}",
                    "held_out": "pairs of up to 32 tokens from the 11 held-out articles, 15% masked"}  # fmt: skip
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
        if args.save_model and i == chosen[-1]:
            save_model(trainer.model, args.save_model, tokenizer)
    print(f"{'recipe':<66} {'steps':>6} {'MLM acc':>8} {'NSP acc':>8}")
    for row in results["rows"]:
        print(f"{row['name']:<66} {row['steps']:>6} {row['mlm_acc']:>8.1%} {row['nsp_acc']:>8.1%}")


if __name__ == "__main__":
    main()
