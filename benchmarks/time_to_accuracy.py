"""Quality per minute: how long minibert and transformers' BertForPreTraining take to reach a held-out MLM accuracy.

Same config, same weights at step 0 (the MLM bias started at the log frequencies, as chapter 07 does), same batches
in the same order, same recipe (AdamW, warmup and linear decay over --steps, clipping) and one thread each. They
train in alternating chunks of --eval-every steps, so the machine's load hits both alike, and each is evaluated on
the same held-out batches after each of its chunks (evaluation time is not training time). The two follow the same
trajectory step for step (the losses agree to float rounding); what differs is the time a step takes.

    python benchmarks/time_to_accuracy.py                    # bert-tiny, 128 x 32 batches, target 15%
    python benchmarks/time_to_accuracy.py --vocab 4096       # with chapter 07's vocabulary
    python benchmarks/time_to_accuracy.py --target 0.12 --steps 1000

Prints, for each, the training time to reach the target and the accuracy reached within minibert's time, then
    ratio (transformers time / minibert time): N.NNx
"""

from __future__ import annotations

import argparse
import os

import torch

from minibert.course import timed


def minibert_loss(model, batch) -> torch.Tensor:
    from minibert.pretrain import pretraining_sums

    mlm, nsp, s = pretraining_sums(model, batch)
    return mlm / s["masked"] + nsp / batch["input_ids"].size(0)


def hf_loss(model, batch) -> torch.Tensor:
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels", "next_sentence_label")}
    return model(**inputs).loss


@torch.no_grad()
def mlm_accuracy(model, batches, is_hf: bool) -> float:
    """Held-out accuracy at the masked positions."""
    was = model.training
    model.eval()
    correct = total = 0
    for b in batches:
        masked = b["labels"] != -100
        inputs = {k: b[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
        if is_hf:
            logits = model(**inputs).prediction_logits[masked]
        else:
            logits = model(**inputs, masked_positions=masked).mlm_logits
        correct += int((logits.argmax(-1) == b["labels"][masked]).sum())
        total += int(masked.sum())
    model.train(was)
    return correct / total


class Run:
    """One model's training: its optimizer and schedule, its clock, and its evaluations."""

    def __init__(self, name, model, loss_fn, is_hf, lr, steps, warmup):
        from minibert.pretrain import TrainConfig, adamw, linear_warmup_decay, lr_scheduler

        self.name, self.model, self.loss_fn, self.is_hf = name, model, loss_fn, is_hf
        self.optimizer = adamw(model, TrainConfig(lr=lr))  # the same (fused) AdamW and decay groups for both
        self.scheduler = lr_scheduler(self.optimizer, linear_warmup_decay(warmup), steps)
        self.step, self.seconds, self.cpu_seconds, self.losses = 0, 0.0, 0.0, []
        self.evals: list[tuple[int, float, float]] = []  # (step, training seconds, accuracy)

    def train(self, batches) -> None:
        def steps():
            for batch in batches:
                loss = self.loss_fn(self.model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                self.scheduler.step()
                self.losses.append(loss.item())

        _, t = timed(steps)
        self.step += len(batches)
        self.seconds += t.wall
        self.cpu_seconds += t.cpu

    def evaluate(self, held) -> float:
        acc = mlm_accuracy(self.model, held, self.is_hf)
        self.evals.append((self.step, self.seconds, acc))
        return acc

    def reached(self, target: float) -> tuple[int, float, float] | None:
        return next((e for e in self.evals if e[2] >= target), None)

    def within(self, seconds: float) -> tuple[int, float, float]:
        return [e for e in self.evals if e[1] <= seconds + 1e-9][-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bert-tiny")
    parser.add_argument("--vocab", type=int, default=8192, help="WordPiece size trained on the training articles")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=float, default=0.06)
    parser.add_argument("--steps", type=int, default=2000, help="the schedule's length; training stops sooner")
    parser.add_argument("--target", type=float, default=0.15, help="held-out MLM accuracy to reach")
    parser.add_argument("--eval-every", type=int, default=50, help="steps per chunk; each model is scored after each")
    parser.add_argument("--eval-batches", type=int, default=8, help="held-out batches of 64 sequences")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from transformers import BertConfig, BertForPreTraining

    from minibert import EncoderForPreTraining, hf, preset
    from minibert.pretrain import (
        init_mlm_bias,
        make_pretraining_data,
        pretraining_documents,
        pretraining_tokenizer,
        token_counts,
    )

    torch.set_num_threads(args.threads)
    tokenizer = pretraining_tokenizer(vocab_size=args.vocab)
    data = make_pretraining_data(tokenizer, batch_size=args.batch_size, max_seq_length=args.seq_len,
                                 max_eval_batches=args.eval_batches)  # fmt: skip
    held = data.eval
    config = preset(args.preset, vocab_size=len(tokenizer), hidden_dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    mine = EncoderForPreTraining(config)
    init_mlm_bias(mine, token_counts(pretraining_documents(tokenizer)[0], len(tokenizer)))
    theirs = BertForPreTraining(BertConfig(**hf.bert_config_to_hf(config)))
    missing, unexpected = theirs.load_state_dict(
        hf.minibert_state_dict_to_bert(mine.state_dict(), config), strict=False
    )
    assert not unexpected and all("predictions.decoder." in k for k in missing), (missing, unexpected)
    theirs.tie_weights()
    with torch.no_grad():
        a, b = minibert_loss(mine.eval(), held[0]), hf_loss(theirs.eval(), held[0])
    mine.train()
    theirs.train()

    runs = [Run("minibert", mine, minibert_loss, False, args.lr, args.steps, args.warmup),
            Run("transformers", theirs, hf_loss, True, args.lr, args.steps, args.warmup)]  # fmt: skip
    for r in runs:
        r.evaluate(held)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.preset} ({config.num_layers} x {config.hidden_size}), vocabulary {config.vocab_size}, batches of "
          f"{args.batch_size} x {args.seq_len}, peak lr {args.lr:g} over {args.steps} steps, {args.threads} thread(s); "
          f"load average at the start {load:.1f}")  # fmt: skip
    print(f"same weights at step 0: held-out losses {float(a):.4f} and {float(b):.4f}")
    step = 0
    while step < args.steps and not all(r.reached(args.target) for r in runs):
        chunk = [next(data.train) for _ in range(min(args.eval_every, args.steps - step))]
        for r in runs:
            if not r.reached(args.target):
                r.train(chunk)
                r.evaluate(held)
        step += len(chunk)
        shown = ", ".join(f"{r.name} {r.evals[-1][2]:.1%} at {r.evals[-1][1]:.0f} s" for r in runs)
        print(f"  step {step}: {shown}", flush=True)
    mb, tf = runs
    n = min(len(mb.losses), len(tf.losses))
    gap = max(abs(x - y) for x, y in zip(mb.losses[:n], tf.losses[:n]))
    print(f"training losses over the first {n} steps differ by at most {gap:.1e}")
    for r in runs:
        hit = r.reached(args.target)
        per_step = r.seconds / max(r.step, 1)
        if hit:
            print(f"{r.name:>13}: {args.target:.0%} held-out MLM accuracy after {hit[0]} steps, {hit[1]:.1f} s of "
                  f"training ({per_step:.3f} s/step)")  # fmt: skip
        else:
            print(f"{r.name:>13}: {args.target:.0%} not reached in {r.step} steps, {r.seconds:.1f} s")
    if not mb.reached(args.target):
        print("ratio (transformers time / minibert time): n/a (minibert did not reach the target; raise --steps)")
        return
    budget = mb.reached(args.target)[1]
    for r in runs:
        s, t, acc = r.within(budget)
        print(f"{r.name:>13}: within minibert's {budget:.1f} s: {acc:.1%} held-out MLM accuracy (step {s})")
    hit = tf.reached(args.target)
    steps = min(mb.step, tf.step)
    print(f"seconds per step over the first {steps} steps, CPU time: minibert {mb.cpu_seconds / mb.step:.3f}, "
          f"transformers {tf.cpu_seconds / tf.step:.3f}")  # fmt: skip
    if hit:
        print(f"ratio (transformers time / minibert time): {hit[1] / budget:.2f}x")
    else:
        print(f"ratio (transformers time / minibert time): > {tf.seconds / budget:.2f}x (transformers did not reach "
              "the target)")  # fmt: skip


if __name__ == "__main__":
    main()
