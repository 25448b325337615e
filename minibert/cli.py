"""The ``minibert`` command line.

The package is imported inside each command, not at the top: options are checked and ``--help`` answers before
torch and the data are loaded (a second or two), so a typo costs nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import tempfile
from pathlib import Path


class UsageError(ValueError):
    """A bad option, found before any work starts; main prints it argparse-style and exits with status 2."""


def _cmd_exercises(args: argparse.Namespace) -> int:
    from .course import exercises

    return exercises.main(["--root", str(args.root)] + (["--check"] if args.check else []))


def _cmd_grade(args: argparse.Namespace) -> int:
    from .course import grade

    if args.timeout <= 0:
        raise UsageError(f"--timeout must be above 0 seconds (got {args.timeout})")
    if args.csv is not None and Path(args.csv).is_dir():
        raise UsageError(f"--csv {args.csv} is a folder; give a file name for the gradebook, e.g. grades.csv")
    grade.find_notebooks(args.paths)  # a missing path or an empty folder is an error before any notebook runs
    rows = grade.grade(args.paths, args.timeout, progress=lambda s: print(s, file=sys.stderr, flush=True))
    print(grade.table(rows))
    if args.csv is not None:
        grade.write_csv(rows, args.csv)
        print(f"wrote the gradebook to {args.csv}", file=sys.stderr)
    return 0


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
        from .text import BertTokenizer

        return BertTokenizer.from_pretrained(minilm_path())
    from .pretrain import pretraining_tokenizer

    try:
        return pretraining_tokenizer(lang, int(vocab))
    except ValueError as e:
        least = re.search(r"smaller than the alphabet and special tokens \((\d+)\)", str(e))
        if least:  # known only once the corpus is read
            raise UsageError(f"--vocab {vocab} is smaller than the {lang} corpus's characters and special tokens; use "
                             f"at least {least[1]}") from e  # fmt: skip
        raise


# Options that decide the data, the model and the schedule: a resumed run must be given the same ones
_RUN_OPTIONS = ("preset", "corpus", "vocab", "phases", "batch_size", "seq_len", "lr", "warmup", "decay", "mask_prob",
                "max_predictions", "whole_word", "static", "dupe_factor", "no_nsp", "dropout", "max_documents",
                "seed")  # fmt: skip

# Chapter 07's recipe, minibert.pretrain.COURSE_RECIPE (tests/test_cli.py checks that the two agree); written out
# here so that --help and the option checks answer before torch is imported
RECIPE = {"preset": "bert-tiny", "vocab": "4096", "phases": "32:128:0.9,128:32:0.1", "lr": 2e-3, "warmup": 0.06,
          "decay": 0.2, "dropout": 0.0, "mask_prob": 0.2, "whole_word": False, "dupe_factor": 10}  # fmt: skip


def _parse_phases(text: str) -> list[tuple[int, int, float]]:
    """'32:128:0.9,128:32:0.1' -> [(32, 128, 0.9), (128, 32, 0.1)]: sequence length, batch size, share of steps."""
    phases = []
    for part in text.split(","):
        fields = part.strip().split(":")
        try:
            if len(fields) != 3:
                raise ValueError
            phases.append((int(fields[0]), int(fields[1]), float(fields[2])))
        except ValueError:
            raise UsageError(f"--phases {text!r}: each phase is LENGTH:BATCH:SHARE (sequence length, batch size, "
                             "share of the steps), e.g. 32:128:0.9,128:32:0.1") from None  # fmt: skip
    if any(not (math.isfinite(share) and 0 < share <= 1) for *_, share in phases):
        raise UsageError(f"--phases {text!r}: each share of the steps must be above 0 and at most 1")
    if abs(sum(share for *_, share in phases) - 1) > 1e-6:
        raise UsageError(
            f"--phases {text!r}: the shares add up to {sum(s for *_, s in phases):g}; make them add up to 1"
        )
    return phases


def _phases_of(args: argparse.Namespace) -> list[tuple[int, int, float]]:
    """The run's phases: --phases, or one phase of --seq-len and --batch-size (each defaults to the recipe's first)."""
    if args.phases is not None:
        if args.seq_len is not None or args.batch_size is not None:
            raise UsageError("give either --phases or --seq-len/--batch-size, not both")
        return _parse_phases(args.phases)
    if args.seq_len is None and args.batch_size is None:
        return _parse_phases(RECIPE["phases"])
    first_len, first_batch, _ = _parse_phases(RECIPE["phases"])[0]
    return [(args.seq_len or first_len, args.batch_size or first_batch, 1.0)]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_pretrain_args(args: argparse.Namespace) -> list[Path]:
    """Refuse bad options before any work starts (tokenizer, data, model); returns the checkpoints in --out."""
    from .config import PRESETS

    def need(ok: bool, message: str) -> None:
        if not ok:
            raise UsageError(message)

    def at_least(name: str, low: int) -> None:
        value = getattr(args, name)
        need(value is None or value >= low, f"{_flag(name)} must be at least {low} (got {value})")

    def positive(name: str) -> None:
        value = getattr(args, name)
        need(value is None or (math.isfinite(value) and value > 0), f"{_flag(name)} must be above 0 (got {value})")

    at_least("steps", 1)
    positive("minutes")
    positive("lr")
    for name in ("batch_size", "micro_batch_size", "max_predictions", "dupe_factor", "max_eval_batches", "threads"):
        at_least(name, 1)
    need(args.decay is None or (math.isfinite(args.decay) and 0 < args.decay <= 1),
         f"--decay must be a share of the steps above 0 and at most 1, e.g. 0.2 (got {args.decay})")  # fmt: skip
    args.phase_list = _phases_of(args)
    several = len(args.phase_list) > 1 or args.phases is not None
    docs = 1 if args.no_nsp else 2  # next-sentence prediction draws its random segments from other articles
    need(args.max_documents is None or args.max_documents >= docs,
         f"--max-documents must be at least {docs} (got {args.max_documents})"
         + ("" if args.no_nsp else ": next-sentence prediction needs a second article (or pass --no-nsp)"))  # fmt: skip
    for name in ("eval_every", "checkpoint_every"):
        need(getattr(args, name) >= 0, f"{_flag(name)} must be 0 (only at the end) or more (got {getattr(args, name)})")
    need(math.isfinite(args.warmup) and args.warmup >= 0,
         f"--warmup must be 0 or more: a fraction of the steps, or a number of steps (got {args.warmup})")  # fmt: skip
    need(0 < args.mask_prob < 1, f"--mask-prob must be between 0 and 1, e.g. 0.15 (got {args.mask_prob})")
    need(0 <= args.dropout < 1, f"--dropout must be at least 0 and below 1, e.g. 0.1 (got {args.dropout})")
    need(0 <= args.seed < 2**32, f"--seed must be between 0 and 2**32 - 1 (got {args.seed})")
    need(args.vocab == "minilm" or (args.vocab.isdigit() and int(args.vocab) > 0),
         f"--vocab must be 'minilm' or a vocabulary size such as 8192 (got {args.vocab!r})")  # fmt: skip
    need(args.preset in PRESETS, f"--preset {args.preset!r} is not a preset; choose one of {', '.join(PRESETS)}")
    positions = PRESETS[args.preset].max_position_embeddings
    world = int(os.environ.get("WORLD_SIZE", "1"))
    for seq_len, batch_size, _ in args.phase_list:
        if several:
            length, batch = f"--phases: sequence length {seq_len}", f"--phases: batch size {batch_size}"
            need(batch_size >= 1, f"{batch} must be at least 1")
            need(seq_len >= 8, f"{length} must be at least 8: [CLS] and [SEP] leave too little room for text")
        else:
            length, batch = f"--seq-len {seq_len}", f"--batch-size {batch_size}"
            need(seq_len >= 8, f"--seq-len must be at least 8 (got {seq_len}): [CLS] and [SEP] leave too little "
                 "room for text")  # fmt: skip
        need(seq_len <= positions, f"{length} is longer than {args.preset}'s {positions} positions")
        need(batch_size % world == 0, f"{batch} does not split over {world} processes; use a multiple of {world}")
        per_rank = batch_size // world
        if args.micro_batch_size is not None:
            divisors = [d for d in range(1, per_rank + 1) if per_rank % d == 0]
            need(per_rank % args.micro_batch_size == 0,
                 f"--micro-batch-size {args.micro_batch_size} does not divide the {per_rank} sequences each process "
                 f"gets per step; use one of {', '.join(map(str, divisors[-6:]))}")  # fmt: skip
    if not args.no_nsp:
        from .pretrain import split_articles
        from .text import wikipedia

        articles = len(split_articles(wikipedia(args.corpus))[0])
        need(articles >= 2, f"--corpus {args.corpus} has {articles} training article(s); next-sentence prediction "
             "needs 2 or more: pass --no-nsp")  # fmt: skip
    return _check_out(args)


def _check_out(args: argparse.Namespace) -> list[Path]:
    """--out: a folder that can be written; a new run must not overwrite an earlier one's checkpoints."""
    from .pretrain import checkpoint_folders

    if not args.out.strip():
        raise UsageError("--out is empty; give the folder for the run's checkpoints and history")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder (it will hold checkpoints/ and history.json)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"--out {out} cannot be written ({e.strerror or e}); choose a folder you can write to") from e
    found = checkpoint_folders(out)
    if args.resume and not found and (out / "history.json").exists():
        raise UsageError(f"--resume: {out} holds a run's history.json but no checkpoint to resume from; choose a new "
                         "folder")  # fmt: skip
    if not args.resume:
        if found or (out / "history.json").exists():
            what = f"checkpoints up to {found[-1].name}" if found else "history.json"
            raise UsageError(f"--out {out} already holds a run ({what}); pass --resume to continue it, or choose a "
                             "new folder")  # fmt: skip
        return found
    saved = out / "arguments.json"
    if found and saved.is_file():
        try:
            before = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            before = {}  # a damaged record only loses this check
        changed = [f"{_flag(k)} {before[k]} (now {getattr(args, k)})" for k in _RUN_OPTIONS
                   if k in before and before[k] != getattr(args, k)]  # fmt: skip
        if args.steps is not None and before.get("steps") not in (None, args.steps):
            changed.append(f"--steps {before['steps']} (now {args.steps})")
        if changed:
            raise UsageError(f"--resume: the run in {out} was started with {', '.join(changed)}; resume with the "
                             "options it started with")  # fmt: skip
    return found


def _save_arguments(args: argparse.Namespace, steps: int | None) -> None:
    from .files import atomic_write

    record = {k: getattr(args, k) for k in _RUN_OPTIONS} | {"steps": steps}
    text = json.dumps(record, indent=2) + "\n"
    atomic_write(Path(args.out) / "arguments.json", lambda f: Path(f).write_text(text, encoding="utf-8"))


class _StopOnInterrupt:
    """Ctrl-C (or SIGTERM) during training: finish the step, save a checkpoint and stop; a second one quits at once.

    It sets the trainer's time limit to zero, which every rank checks at the end of each step.
    """

    def __init__(self, trainer) -> None:
        self.trainer, self.stopped, self.previous = trainer, False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except (TypeError, ValueError, OSError):  # no such signal here, or not the main thread
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.stopped:  # the second one: stop now
            raise KeyboardInterrupt
        self.stopped = True
        self.trainer.config.max_minutes = 0.0
        if self.trainer.rank == 0:
            os.write(2, b"\nstopping after this step and saving a checkpoint (press Ctrl-C again to quit at once)\n")

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    found = _check_pretrain_args(args)  # before any work: a typo costs nothing
    if args.resume and found:
        from .pretrain import find_intact_checkpoint

        _, files, _ = find_intact_checkpoint(args.out)  # none intact: an error that lists why
        step, total = files["state"]["step"], files["state"]["total_steps"]
        if step >= total:
            print(f"the run in {args.out} has already finished (step {step} of {total}); nothing to train: start a "
                  "new run in another --out")  # fmt: skip
            return 0
    import torch

    from .config import preset
    from .encoder import EncoderForPreTraining
    from .files import atomic_write
    from .pretrain import (
        Phase,
        TrainConfig,
        Trainer,
        init_distributed,
        init_mlm_bias,
        make_pretraining_data,
        pretraining_documents,
        split_steps,
        token_counts,
        warmup_then_decay,
    )
    from .runtime import seed_everything

    if args.steps is None and args.minutes is None:
        args.minutes = 10.0
    if args.threads:
        torch.set_num_threads(args.threads)
    rank, world, device = init_distributed()
    say = print if rank == 0 else (lambda *a, **k: None)
    out = Path(args.out)
    if args.resume and not found:
        say(f"note: --resume: {out} holds no checkpoint yet; starting a new run", file=sys.stderr)
    if rank == 0 and not found:
        _save_arguments(args, args.steps)
    seed_everything(args.seed)
    tokenizer = _tokenizer_for(args.vocab, args.corpus)
    phases = [
        make_pretraining_data(
            tokenizer,
            lang=args.corpus,
            batch_size=batch_size,
            max_seq_length=seq_len,
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
        for seq_len, batch_size, _ in args.phase_list
    ]
    shares = [share for *_, share in args.phase_list]
    data = phases[0]  # held-out batches at the first phase's length (the recipe's: 32 tokens)
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
    total = args.steps or 1000  # a placeholder when the steps are planned from --minutes
    plan = [Phase(n, d.train) for n, d in zip(split_steps(total, shares), phases)]
    schedule = warmup_then_decay(args.warmup, args.decay)
    trainer = Trainer(model, plan, config, eval_data=data.eval, schedule=schedule, device=device, tokenizer=tokenizer)
    params = sum(p.numel() for p in model.parameters())
    sequences = " then ".join(f"{len(d.train.instances)} x {n}" for d, (n, *_) in zip(phases, args.phase_list))
    say(f"{args.preset}: {params / 1e6:.1f} M parameters, vocabulary {len(tokenizer)}, training sequences "
        f"{sequences} tokens, {world} process(es) on {device}")  # fmt: skip
    if args.resume and trainer.resume():
        say(f"resumed at step {trainer.step} of {trainer.total_steps}")
    elif args.steps is None:
        steps = trainer.plan_minutes(args.minutes, shares=shares)
        say(f"planned {steps} steps for {args.minutes:g} minutes")
        if rank == 0:
            _save_arguments(args, steps)
    with _StopOnInterrupt(trainer) as interrupt:
        trainer.fit()
    if rank == 0:
        text = json.dumps({"steps": trainer.history, "evals": trainer.evals}) + "\n"
        atomic_write(out / "history.json", lambda f: Path(f).write_text(text, encoding="utf-8"))
        final = trainer.evals[-1] if trainer.evals else {}
        shown = ", ".join(f"{k} {v:.4f}" for k, v in final.items() if k not in ("step", "train_seconds"))
        say(f"step {trainer.step}: held-out {shown}; checkpoint in {out / 'checkpoints'}")
    if interrupt.stopped and trainer.step < trainer.total_steps:
        say(f"interrupted at step {trainer.step} of {trainer.total_steps}; the checkpoint is saved: add --resume to "
            "the same command to continue", file=sys.stderr)  # fmt: skip
        return 130
    return 0


def _cmd_fill_mask(args: argparse.Namespace) -> int:
    from .pretrain import fill_mask, load_pretrained

    if args.top_k < 1:
        raise UsageError(f"--top-k must be at least 1 (got {args.top_k})")
    model, tokenizer = load_pretrained(args.checkpoint)
    vocab = model.config.vocab_size
    if args.top_k > vocab:
        raise UsageError(f"--top-k {args.top_k} is more than the model's vocabulary ({vocab} tokens); use at most "
                         f"{vocab}")  # fmt: skip
    n, limit = len(tokenizer.encode(args.text)), model.config.max_position_embeddings
    results = fill_mask(model, tokenizer, args.text, top_k=args.top_k)
    if n > limit:
        print(f"note: the text has {n} tokens; the model reads its first {limit}", file=sys.stderr)
    for i, options in enumerate(results):
        print(f"[MASK] {i + 1}: " + ", ".join(f"{token} ({p:.3f})" for token, p in options))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .pretrain import export_hf

    out = export_hf(args.checkpoint, args.out, force=args.force)
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

    p = sub.add_parser("grade", help="run learners' exercise notebooks; one verdict per exercise, a gradebook")
    p.add_argument("paths", nargs="+", metavar="PATH", help="exercise notebooks, or folders of them")
    p.add_argument("--csv", metavar="FILE", help="also write the verdicts to this CSV file")
    p.add_argument("--timeout", type=float, default=600, help="seconds per notebook (default 600)")
    p.set_defaults(func=_cmd_grade)

    p = sub.add_parser("pretrain", help="pretrain a BERT on the Wikipedia excerpt (MLM + NSP); torchrun-ready")
    p.add_argument("--out", required=True, help="output folder: checkpoints/, history.json")
    p.add_argument("--preset", default=RECIPE["preset"], help="model size (minibert.config.PRESETS)")
    p.add_argument("--corpus", default="en", choices=["en", "bg"], help="which Wikipedia excerpt")
    p.add_argument("--vocab", default=RECIPE["vocab"], help="a WordPiece size to train on the corpus, or 'minilm' "
                   "(30522)")  # fmt: skip
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="training time; the step count is planned from it (default 10)")
    budget.add_argument("--steps", type=int, help="optimizer steps")
    p.add_argument("--phases", help=f"sequence lengths and batch sizes over the run, LENGTH:BATCH:SHARE,... (default "
                   f"{RECIPE['phases']}, chapter 07's recipe)")  # fmt: skip
    p.add_argument("--batch-size", type=int, help="global batch (all processes together): one phase with this batch")
    p.add_argument("--micro-batch-size", type=int, help="per forward pass; smaller = gradient accumulation")
    p.add_argument("--seq-len", type=int, help="one phase of this sequence length")
    p.add_argument("--lr", type=float, default=RECIPE["lr"], help="peak learning rate")
    p.add_argument("--warmup", type=float, default=RECIPE["warmup"], help="fraction of the steps, or a number of steps")
    p.add_argument("--decay", type=float, default=RECIPE["decay"], help="warmup-stable-decay: the share of the steps "
                   "the learning rate decays over (1 - sqrt); without it, it decays linearly all the way")  # fmt: skip
    p.add_argument("--mask-prob", type=float, default=RECIPE["mask_prob"])
    p.add_argument("--max-predictions", type=int, default=20, help="masked tokens per sequence at most")
    p.add_argument("--whole-word", action="store_true", default=RECIPE["whole_word"], help="mask whole words")
    p.add_argument("--static", action="store_true", help="mask once before training (original BERT)")
    p.add_argument("--dupe-factor", type=int, default=RECIPE["dupe_factor"], help="copies of the data, each split and "
                   "cut differently")  # fmt: skip
    p.add_argument("--no-nsp", action="store_true", help="MLM only: single-segment sequences, no NSP head")
    p.add_argument("--dropout", type=float, default=RECIPE["dropout"], help="BERT used 0.1; short runs learn "
                   "faster without")  # fmt: skip
    p.add_argument("--no-bias-init", action="store_true", help="start the MLM bias at 0, not at log frequencies")
    p.add_argument("--eval-every", type=int, default=100, help="steps between evaluations (0: only at the end)")
    p.add_argument("--max-eval-batches", type=int, help="evaluate on fewer held-out batches")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints (0: only at the end)")
    p.add_argument("--max-documents", type=int, help="train on the first N articles only")
    p.add_argument("--resume", action="store_true", help="continue from the newest intact checkpoint in --out")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("fill-mask", help="predict the [MASK] tokens of a sentence with a pretrained checkpoint")
    p.add_argument("checkpoint", help="a pretrain --out folder, one of its checkpoints, or an exported folder")
    p.add_argument("text", help="a sentence with [MASK], e.g. 'The capital of France is [MASK].'")
    p.add_argument("--top-k", type=int, default=5, help="how many tokens to show for each [MASK]")
    p.set_defaults(func=_cmd_fill_mask)

    p = sub.add_parser("export", help="write a checkpoint as a Hugging Face BertForPreTraining folder")
    p.add_argument("checkpoint", help="a pretrain --out folder or one of its checkpoints")
    p.add_argument("out", help="a new folder to write (config.json, model.safetensors, vocab.txt)")
    p.add_argument("--force", action="store_true", help="write into a folder that already holds files")
    p.set_defaults(func=_cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .files import CheckpointError

    args = build_parser().parse_args(argv)
    prefix = f"minibert {args.command}: "
    try:
        return args.func(args)
    except ImportError as e:  # a missing package: say which to install; a broken minibert is a bug, not bad input
        if (e.name or "").startswith("minibert"):
            raise
        print(f"{prefix}error: {e}", file=sys.stderr)
        return 2
    except (ValueError, CheckpointError) as e:  # bad input: say what to do, no traceback
        print(f"{prefix}error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file that cannot be read or written: name it
        where = f" {e.filename}" if e.filename else ""
        print(f"{prefix}error: {e.strerror or e}:{where}" if e.strerror else f"{prefix}error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{prefix}interrupted{_since_checkpoint(args)}", file=sys.stderr)
        return 130


def _since_checkpoint(args: argparse.Namespace) -> str:
    if args.command != "pretrain":
        return ""
    from .pretrain import latest_checkpoint

    latest = latest_checkpoint(args.out)
    if latest is None:
        return "; no checkpoint was saved"
    return f"; the newest checkpoint is {latest}: add --resume to the same command to continue from it"


if __name__ == "__main__":
    sys.exit(main())
