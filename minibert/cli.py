"""The ``minibert`` command line."""

from __future__ import annotations

import argparse
import sys


def _cmd_exercises(args: argparse.Namespace) -> int:
    from . import exercises

    return exercises.main(["--root", str(args.root)] + (["--check"] if args.check else []))


def _cmd_info(args: argparse.Namespace) -> int:
    import torch

    from . import __version__
    from .runtime import get_device, profile

    print(f"minibert {__version__}, torch {torch.__version__}, device {get_device()}, profile {profile()}")
    return 0


def _tokenizer_for(vocab: str, lang: str):
    """'minilm': bert-base-uncased's vocabulary (shipped with all-MiniLM-L6-v2); a number: a WordPiece vocabulary
    of that size trained on the excerpt's training articles."""
    if vocab == "minilm":
        from .hf import minilm_path
        from .tokenization import BertTokenizer

        return BertTokenizer.from_pretrained(minilm_path())
    if not vocab.isdigit():
        raise SystemExit(f"--vocab {vocab!r}: use 'minilm' or a vocabulary size such as 8192")
    from .data import pretraining_tokenizer

    return pretraining_tokenizer(lang, int(vocab))


def _cmd_pretrain(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from .config import preset
    from .data import make_pretraining_data, pretraining_documents
    from .files import atomic_write
    from .model import EncoderForPreTraining
    from .runtime import seed_everything
    from .training import TrainConfig, Trainer, init_distributed, init_mlm_bias, token_counts

    if args.steps is None and args.minutes is None:
        args.minutes = 10.0
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = init_distributed()
    seed_everything(args.seed)
    tokenizer = _tokenizer_for(args.vocab, args.corpus)
    data = make_pretraining_data(
        tokenizer,
        lang=args.corpus,
        batch_size=args.batch_size,
        max_seq_length=args.seq_len,
        mask_prob=args.mask_prob,
        max_predictions=args.max_predictions,
        nsp=not args.no_nsp,
        whole_word=args.whole_word,
        static=args.static,
        dupe_factor=args.dupe_factor,
        max_documents=args.max_documents,
        max_eval_batches=args.max_eval_batches,
        seed=args.seed,
    )
    overrides = {"vocab_size": len(tokenizer), "nsp": not args.no_nsp, "pooler": not args.no_nsp,
                 "hidden_dropout": args.dropout, "attention_dropout": args.dropout}  # fmt: skip
    model = EncoderForPreTraining(preset(args.preset, **overrides))
    if not args.no_bias_init:
        init_mlm_bias(model, token_counts(pretraining_documents(tokenizer, args.corpus)[0], len(tokenizer)))
    config = TrainConfig(
        steps=args.steps or 1,
        micro_batch_size=args.micro_batch_size,
        lr=args.lr,
        warmup=args.warmup,
        eval_every=args.eval_every,
        checkpoint_every=args.checkpoint_every,
        out_dir=args.out,
        max_minutes=args.minutes * 1.1 if args.minutes else None,  # a hard stop a little past the plan
        seed=args.seed,
        progress=not args.quiet,
    )
    trainer = Trainer(model, data.train, config, eval_data=data.eval, device=device, tokenizer=tokenizer)
    say = print if rank == 0 else (lambda *a, **k: None)
    params = sum(p.numel() for p in model.parameters())
    say(f"{args.preset}: {params / 1e6:.1f} M parameters, vocabulary {len(tokenizer)}, {len(data.train.instances)} "
        f"training sequences, {world} process(es) on {device}")  # fmt: skip
    if args.resume and trainer.resume():
        say(f"resumed at step {trainer.step} of {trainer.total_steps}")
    elif args.steps is None:
        say(f"planned {trainer.plan_minutes(args.minutes)} steps for {args.minutes:g} minutes")
    trainer.fit()
    if rank == 0:
        text = json.dumps({"steps": trainer.history, "evals": trainer.evals}) + "\n"
        atomic_write(Path(args.out) / "history.json", lambda f: Path(f).write_text(text, encoding="utf-8"))
        final = trainer.evals[-1] if trainer.evals else {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if k not in ("step", "train_seconds"))
        say(f"step {trainer.step}: held-out {shown}; checkpoint in {Path(args.out) / 'checkpoints'}")
    return 0


def _cmd_fill_mask(args: argparse.Namespace) -> int:
    from .training import fill_mask, load_pretrained

    model, tokenizer = load_pretrained(args.checkpoint)
    for i, options in enumerate(fill_mask(model, tokenizer, args.text, top_k=args.top_k)):
        print(f"[MASK] {i + 1}: " + ", ".join(f"{token} ({p:.3f})" for token, p in options))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .training import export_hf

    out = export_hf(args.checkpoint, args.out)
    print(f"wrote a transformers BertForPreTraining folder to {out}; try:")
    print(f'  transformers.pipeline("fill-mask", model="{out}")("The capital of France is [MASK].")')
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minibert", description="BERT from the ground up")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, device and course profile")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("exercises", help="regenerate exercises/ from solutions/ (or --check that it is current)")
    p.add_argument("--root", default=".", help="the course folder")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=_cmd_exercises)

    p = sub.add_parser("pretrain", help="pretrain a BERT on the Wikipedia excerpt (MLM + NSP); torchrun-ready")
    p.add_argument("--out", required=True, help="output folder: checkpoints/, history.json")
    p.add_argument("--preset", default="bert-tiny", help="model size (minibert.config.PRESETS)")
    p.add_argument("--corpus", default="en", choices=["en", "bg"], help="which Wikipedia excerpt")
    p.add_argument("--vocab", default="8192", help="a WordPiece size to train on the corpus, or 'minilm' (30522)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time; the step count is planned from it (default 10)")
    budget.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--batch-size", type=int, default=128, help="global batch (all processes together)")
    p.add_argument("--micro-batch-size", type=int, help="per forward pass; smaller = gradient accumulation")
    p.add_argument("--seq-len", type=int, default=32, help="short: a fresh model learns to use context sooner")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--warmup", type=float, default=0.06, help="fraction of the steps, or a number of steps")
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--max-predictions", type=int, default=20, help="masked tokens per sequence at most")
    p.add_argument("--whole-word", action="store_true", help="mask whole words")
    p.add_argument("--static", action="store_true", help="mask once before training (original BERT)")
    p.add_argument("--dupe-factor", type=int, default=1, help="copies of the data with different splits/masks")
    p.add_argument("--no-nsp", action="store_true", help="MLM only: single-segment sequences, no NSP head")
    p.add_argument("--dropout", type=float, default=0.0, help="BERT used 0.1; short runs learn faster without")
    p.add_argument("--no-bias-init", action="store_true", help="start the MLM bias at 0, not at log frequencies")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--max-eval-batches", type=int, help="evaluate on fewer held-out batches")
    p.add_argument("--checkpoint-every", type=int, default=200)
    p.add_argument("--max-documents", type=int, help="train on the first N articles only")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pretrained checkpoint")
    p.add_argument("checkpoint", help="a pretrain --out folder, one of its checkpoints, or an exported folder")
    p.add_argument("text", help="a sentence with [MASK], e.g. 'The capital of France is [MASK].'")
    p.add_argument("--top-k", type=int, default=5)
    p.set_defaults(func=_cmd_fill_mask)

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face BertForPreTraining folder")
    p.add_argument("checkpoint", help="a pretrain --out folder or one of its checkpoints")
    p.add_argument("out", help="the folder to write (config.json, model.safetensors, vocab.txt)")
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .files import CheckpointError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, CheckpointError) as e:  # bad input: say what to do, no traceback
        print(f"minibert {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
