"""Long inputs: minibert's ModernBERT against transformers' ModernBertModel (sdpa), same weights, batch 1.

Every (model, length) pair runs in a fresh Python process, so one measurement's memory cannot leak into the
next. Both processes import the same libraries and load the same weights; the inputs are the same seeded ids.

- time: the best of ``--repeats`` forward passes (more for short inputs: at least 3 CPU seconds of them) after
  a first, untimed one, under ``torch.no_grad()``: the least-disturbed run, as timeit reports it (on a shared
  machine the others measure the neighbours' load). It is given as wall-clock seconds and as the CPU seconds the
  process used. With one thread (the default) CPU time is what the wall clock would show on an idle machine, and
  it hardly moves when other programs compete for the cores: the speed-up is computed from it (with
  ``--threads 2``, from the wall clock: use an idle machine);
- peak memory: the process's peak resident set during the first full-length forward pass, from Linux's VmHWM
  (reset by writing 5 to /proc/self/clear_refs just before the pass) minus the resident set before it, i.e.
  what the forward pass itself added (weights and libraries excluded). Before it, one short forward pass does
  the first-call set-up and malloc_trim hands freed heap back, so both models start from what they hold. The
  whole process's peak is printed beside it. Where clear_refs is not writable, resource.getrusage's ru_maxrss
  is used instead (it cannot be reset).

The model is the ``modernbert-mini`` preset (6 layers x 256, GeGLU, local windows of 128 tokens with every third
layer global) with BERT's vocabulary padded to 30,528: 11.2M parameters.

    python benchmarks/long_context.py                      # lengths 512 2048 8192, one thread
    python benchmarks/long_context.py --threads 2 --lengths 512 2048
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from minibert.course import fresh_process, load_average, peak_resident, report, steady_clock, timed, timings

MODELS = {
    "transformers": "transformers ModernBertModel (sdpa)",
    "minibert": "minibert modernbert-mini preset",
    "minibert-global": "minibert, every layer global (for comparison)",
}


def hf_config(max_len: int):
    from transformers import ModernBertConfig

    from minibert import preset
    from minibert.config import pad_vocab_size

    c = preset("modernbert-mini")
    return ModernBertConfig(
        vocab_size=pad_vocab_size(30522),
        hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads,
        max_position_embeddings=max(8192, max_len),
        pad_token_id=0,
        bos_token_id=101,
        eos_token_id=102,
        cls_token_id=101,
        sep_token_id=102,
        attn_implementation="sdpa",
    )


def worker(args: argparse.Namespace) -> None:
    import torch
    import transformers  # noqa: F401  (imported by both workers: the same libraries in memory)

    from minibert import hf
    from minibert.encoder import Encoder
    from minibert.files import load_weights

    torch.set_num_threads(args.threads)
    config = hf_config(args.length)
    sd = load_weights(args.weights)
    if args.model == "transformers":
        model = transformers.ModernBertModel(config)
        model.load_state_dict(sd)
    else:
        cfg = hf.config_from_hf(config.to_dict())
        if args.model == "minibert-global":
            cfg = cfg.replace(global_attn_every_n_layers=1)
        model = hf.from_pretrained(sd, model_class=Encoder, config=cfg)
    model.eval()
    ids = torch.randint(1000, 30000, (1, args.length), generator=torch.Generator().manual_seed(0))

    def run(x=ids):
        with torch.no_grad():
            out = model(input_ids=x) if args.model == "transformers" else model(x)
        return out.last_hidden_state

    run(ids[:, :64])  # first-call set-up (thread pools, kernels) is not the forward pass's memory
    (out, first), memory = peak_resident(timed, run)
    runs = timings(run, repeats=args.repeats, warmup=0, min_cpu_seconds=3.0, max_repeats=50)  # short inputs: more
    torch.save(out, args.out)
    report(
        dict(
            best={"wall": runs.best(), "cpu": runs.best("cpu")},
            median=runs.median(),
            first=first.wall,
            added_bytes=memory.added,
            peak_bytes=memory.peak,
            exact_peak=memory.exact,
        )
    )


def measure(model: str, length: int, weights: Path, out: Path, args) -> dict:
    flags = ["--worker", model, "--length", length, "--weights", weights, "--out", out]
    return fresh_process(__file__, *flags, "--threads", args.threads, "--repeats", args.repeats, threads=args.threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--worker", choices=list(MODELS), dest="model")
    p.add_argument("--length", type=int)
    p.add_argument("--weights")
    p.add_argument("--out")
    args = p.parse_args()
    if args.model:
        return worker(args)

    import torch
    from transformers import ModernBertModel

    from minibert.files import save_safetensors

    torch.manual_seed(0)
    ref = ModernBertModel(hf_config(max(args.lengths)))
    n_params = sum(p.numel() for p in ref.parameters())
    print(
        f"{n_params / 1e6:.1f}M parameters, {args.threads} thread(s), best of {args.repeats} runs after an untimed one"
    )
    print(f"load average before: {load_average()}")
    print("peak = peak resident memory added by the forward pass (VmHWM after reset - VmRSS before)\n")
    clock = steady_clock(args.threads)  # the speed-up's basis
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.safetensors"
        save_safetensors(ref.state_dict(), weights)
        del ref
        header = f"{'length':>6}  {'model':<46} {'CPU s':>7} {'wall s':>7} {'peak MB':>8} {'process MB':>10}  "
        header += f"{'speed-up':>8} {'memory':>7}"
        print(header)
        print("-" * len(header))
        for length in args.lengths:
            rows, outs = {}, {}
            for model in args.models:
                outs[model] = Path(tmp) / f"{model}-{length}.pt"
                rows[model] = measure(model, length, weights, outs[model], args)
            base = rows.get("transformers")
            for model, r in rows.items():
                speed = f"{base['best'][clock] / r['best'][clock]:7.2f}x" if base else ""
                mem = f"{r['added_bytes'] / base['added_bytes']:6.2f}x" if base else ""
                print(
                    f"{length:>6}  {MODELS[model]:<46} {r['best']['cpu']:>7.3f} {r['best']['wall']:>7.3f} "
                    f"{r['added_bytes'] / 2**20:>8.0f} {r['peak_bytes'] / 2**20:>10.0f}  {speed:>8} {mem:>7}"
                )
            if base and "minibert" in rows:
                diff = (torch.load(outs["minibert"]) - torch.load(outs["transformers"])).abs().max().item()
                print(f"{'':>6}  same output as transformers: max abs diff {diff:.1e}")
            print()
    print(f"load average after: {load_average()}")
    basis = "CPU" if clock == "cpu" else "wall-clock"
    print(f"speed-up = transformers' {basis} time / this model's; memory = this model's peak / transformers' peak")


if __name__ == "__main__":
    main()
