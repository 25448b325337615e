"""Tokens per second of one pretraining step: minibert against transformers' BertForPreTraining.

Same config, same weights, same batches (real Wikipedia instances, masked), same optimizer (AdamW), interleaved
in one run so the machine's load hits both alike. minibert scores the vocabulary only at the masked positions;
BertForPreTraining scores it at every position and lets the loss ignore most of them.

    python benchmarks/pretrain_speed.py                         # chapter 07's model: bert-tiny, 8192-token vocabulary
    python benchmarks/pretrain_speed.py --preset bert-mini      # 4 x 256
    python benchmarks/pretrain_speed.py --vocab minilm          # bert-base-uncased's 30522-token vocabulary
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from minibert.course import timed


def build_batches(tokenizer, n: int, batch_size: int, seq_len: int) -> list[dict[str, torch.Tensor]]:
    from minibert.pretrain import make_pretraining_data

    data = make_pretraining_data(tokenizer, batch_size=batch_size, max_seq_length=seq_len, short_seq_prob=0.0)
    return [next(data.train) for _ in range(n)]


def minibert_step(model, optimizer, batch) -> float:
    from minibert.pretrain import pretraining_sums

    mlm, nsp, s = pretraining_sums(model, batch)
    loss = mlm / s["masked"] + nsp / batch["input_ids"].size(0)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def hf_step(model, optimizer, batch) -> float:
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
        labels=batch["labels"],
        next_sentence_label=batch["next_sentence_label"],
    )
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return out.loss.item()


def run_steps(step, model, optimizer, batches) -> None:
    for batch in batches:
        step(model, optimizer, batch)


@torch.no_grad()
def same_loss(mine, theirs, batch) -> float:
    """Largest difference of the two models' eval-mode losses on one batch (they share weights)."""
    from minibert.pretrain import pretraining_sums

    mine.eval(), theirs.eval()
    mlm, nsp, s = pretraining_sums(mine, batch)
    a = float(mlm / s["masked"] + nsp / batch["input_ids"].size(0))
    out = theirs(**{k: v for k, v in batch.items() if k != "labels"})
    b = float(
        F.cross_entropy(out.prediction_logits.flatten(0, 1), batch["labels"].flatten())
        + F.cross_entropy(out.seq_relationship_logits, batch["next_sentence_label"])
    )
    mine.train(), theirs.train()
    return abs(a - b)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bert-tiny")
    parser.add_argument("--vocab", default="8192", help="a WordPiece size trained on the corpus, or 'minilm' (30522)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the median is reported)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from transformers import BertConfig, BertForPreTraining

    from minibert import EncoderForPreTraining, hf, preset
    from minibert.pretrain import TrainConfig, adamw, pretraining_tokenizer
    from minibert.text import BertTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.vocab == "minilm":
        tokenizer = BertTokenizer.from_pretrained(hf.minilm_path())
    else:
        tokenizer = pretraining_tokenizer(vocab_size=int(args.vocab))
    config = preset(args.preset, vocab_size=len(tokenizer), max_position_embeddings=max(512, args.seq_len))
    batches = build_batches(tokenizer, 1 + args.steps * args.rounds, args.batch_size, args.seq_len)

    mine = EncoderForPreTraining(config)
    theirs = BertForPreTraining(BertConfig(**hf.bert_config_to_hf(config)))
    missing, unexpected = theirs.load_state_dict(
        hf.minibert_state_dict_to_bert(mine.state_dict(), config), strict=False
    )
    assert not unexpected and all("predictions.decoder." in k for k in missing), (missing, unexpected)
    theirs.tie_weights()
    diff = same_loss(mine, theirs, batches[0])
    models = {
        "minibert": (mine, minibert_step),
        "transformers": (theirs, hf_step),
    }
    optimizers = {k: adamw(m, TrainConfig(lr=1e-4)) for k, (m, _) in models.items()}  # the same (fused) AdamW
    for name, (model, step) in models.items():  # warm-up step (allocations, first-call costs)
        step(model, optimizers[name], batches[0])

    seconds: dict[str, list[float]] = {k: [] for k in models}
    tokens = [int(b["attention_mask"].sum()) for b in batches]
    for r in range(args.rounds):
        chunk = range(1 + r * args.steps, 1 + (r + 1) * args.steps)
        for name, (model, step) in models.items():
            _, t = timed(run_steps, step, model, optimizers[name], [batches[i] for i in chunk])
            seconds[name].append(t.wall)
    tokens_per_round = [sum(tokens[i] for i in range(1 + r * args.steps, 1 + (r + 1) * args.steps))
                        for r in range(args.rounds)]  # fmt: skip
    rates = {k: statistics.median(t / s for t, s in zip(tokens_per_round, v)) for k, v in seconds.items()}
    masked = statistics.mean(float((b["labels"] != -100).float().mean()) for b in batches)
    print(
        f"{args.preset} ({config.num_layers} x {config.hidden_size}), vocab {config.vocab_size}, batch "
        f"{args.batch_size} x {args.seq_len}, {masked:.1%} of positions masked, {args.threads} thread(s), "
        f"{args.rounds} rounds of {args.steps} steps"
    )
    print(f"same weights, same batch: eval-mode losses differ by {diff:.1e}")
    for name, rate in rates.items():
        per_step = statistics.median(s / args.steps for s in seconds[name])
        print(f"{name:>13}: {rate:9,.0f} tokens/s  ({per_step:.2f} s/step)")
    print(f"ratio minibert / transformers: {rates['minibert'] / rates['transformers']:.2f}x (target: >= 2x)")


if __name__ == "__main__":
    main()
