"""Pretraining: the masked-position loss, accumulation, exact resume, torchrun (gloo) parity, export to transformers."""

import json
import math
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minibert import EncoderConfig, EncoderForPreTraining, hf, pretrain
from minibert.files import CheckpointError
from minibert.pretrain import (
    IGNORE_INDEX,
    Phase,
    TrainConfig,
    Trainer,
    evaluate,
    export_hf,
    fill_mask,
    init_mlm_bias,
    latest_checkpoint,
    linear_warmup_decay,
    load_pretrained,
    pretraining_sums,
    token_counts,
)
from minibert.text import BertTokenizer

TINY = dict(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(hf.minilm_path())


_DATA = {}


def tiny_data(tokenizer, batch_size=8, **kw):
    """Built once per setting; each call gets a fresh stream (at epoch 0, its own collator) over the same instances."""
    options = dict(batch_size=batch_size, max_seq_length=64, max_documents=8, max_eval_batches=1, eval_batch_size=16)
    key = json.dumps(options | kw, sort_keys=True)
    if key not in _DATA:
        _DATA[key] = pretrain.make_pretraining_data(tokenizer, **(options | kw))
    d = _DATA[key]
    collator = pretrain.PretrainingCollator(tokenizer.pad_token_id, d.masker)
    stream = pretrain.PretrainingStream(d.train.instances, d.train.batch_size, collator, d.train.seed)
    return pretrain.PretrainingData(stream, d.eval, d.masker, tokenizer)


def tiny_model(tokenizer, seed=0, **overrides):
    torch.manual_seed(seed)
    return EncoderForPreTraining(EncoderConfig(vocab_size=len(tokenizer), **(TINY | overrides)))


def losses(trainer):
    return [row["loss"] for row in trainer.history]


def test_loss_at_masked_positions_equals_scoring_every_position(tokenizer):
    model = tiny_model(tokenizer).eval()
    batch = next(tiny_data(tokenizer).train)
    mlm, nsp, stats = pretraining_sums(model, batch)
    full = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    ref = F.cross_entropy(full.mlm_logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
    assert torch.allclose(mlm, ref, rtol=1e-5)
    assert stats["masked"] == (batch["labels"] != IGNORE_INDEX).sum()
    assert torch.allclose(nsp, F.cross_entropy(full.nsp_logits, batch["next_sentence_label"], reduction="sum"))


def test_bias_from_token_counts_starts_at_the_unigram_loss(tokenizer):
    d = tiny_data(tokenizer)
    docs = pretrain.pretraining_documents(tokenizer)[0][:8]
    counts = token_counts(docs, len(tokenizer))
    assert counts.sum() == sum(len(s) for doc in docs for s in doc)
    model = tiny_model(tokenizer)
    flat = evaluate(model, d.eval)["mlm_loss"]
    init_mlm_bias(model, counts)
    unigram = evaluate(model, d.eval)["mlm_loss"]
    assert flat > 10.0 and unigram < flat - 2.0  # ln V = 10.3 -> near the unigram entropy
    with pytest.raises(ValueError, match="counts"):
        init_mlm_bias(model, counts[:100])


def test_schedule_warms_up_then_decays_to_zero():
    f = linear_warmup_decay(warmup=10)
    values = [f(s, 100) for s in range(101)]
    assert values[0] < values[5] < values[9] and max(values) == pytest.approx(values[10])
    assert values[10] > values[50] > values[99] > 0 and values[100] == 0
    assert linear_warmup_decay(0.1)(10, 100) == pytest.approx(f(10, 100))


def test_gradient_accumulation_gives_the_same_steps(tokenizer):
    runs = []
    for micro in (None, 2):
        model = tiny_model(tokenizer, hidden_dropout=0.0, attention_dropout=0.0)
        trainer = Trainer(model, tiny_data(tokenizer).train, TrainConfig(steps=3, micro_batch_size=micro,
                          progress=False), device="cpu")  # fmt: skip
        trainer.fit()
        runs.append((losses(trainer), model.state_dict()))
    assert runs[0][0] == pytest.approx(runs[1][0], abs=1e-5)
    for k, v in runs[0][1].items():
        assert torch.allclose(v, runs[1][1][k], atol=1e-5), k
    with pytest.raises(ValueError, match="micro_batch_size"):
        Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, TrainConfig(micro_batch_size=3), device="cpu")


def test_training_learns_and_evaluates(tokenizer):
    d = tiny_data(tokenizer)
    model = tiny_model(tokenizer)
    before = evaluate(model, d.eval)
    trainer = Trainer(
        model, d.train, TrainConfig(steps=12, lr=2e-2, eval_every=6, progress=False), d.eval, device="cpu"
    )
    trainer.fit()
    assert [e["step"] for e in trainer.evals] == [6, 12]
    after = trainer.evals[-1]
    assert after["mlm_loss"] < before["mlm_loss"] - 1.0  # from log(30522) ~ 10.3 towards the unigram entropy
    assert 0 <= after["nsp_acc"] <= 1 and after["mlm_acc"] > before["mlm_acc"]
    labels = torch.cat([b["next_sentence_label"] for b in d.eval]).float()
    assert after["nsp_majority"] == pytest.approx(max(labels.mean(), 1 - labels.mean()).item())
    row = trainer.history[-1]
    assert {"loss", "mlm_loss", "nsp_loss", "mlm_acc", "nsp_acc", "lr", "grad_norm", "tokens"} <= set(row)
    assert row["grad_norm"] > 0 and trainer.history[0]["lr"] < trainer.history[1]["lr"]  # warming up


def test_killed_run_resumes_with_the_identical_loss_sequence(tokenizer, tmp_path):
    """Checkpoint at step 3, lose the process (fresh objects, other seeds), resume: steps 4-6 are bit-identical."""
    config = lambda out: TrainConfig(steps=6, checkpoint_every=3, out_dir=str(out), progress=False, lr=2e-3)
    straight = Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, config(tmp_path / "a"), device="cpu")
    straight.fit()

    first = Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, config(tmp_path / "b"), device="cpu")
    first.fit(steps=3)  # the run dies after its step-3 checkpoint
    assert latest_checkpoint(tmp_path / "b").name == "step-0000003"
    del first
    torch.manual_seed(1234)  # the new process's RNG is elsewhere; the checkpoint must put it back
    resumed = Trainer(tiny_model(tokenizer, seed=99), tiny_data(tokenizer).train, config(tmp_path / "b"), device="cpu")
    assert resumed.resume() and resumed.step == 3
    resumed.fit()
    assert losses(resumed) == losses(straight)  # exact, not approximate
    assert all(torch.equal(v, straight.model.state_dict()[k]) for k, v in resumed.model.state_dict().items())


def test_checkpoints_are_atomic_and_damage_is_reported(tokenizer, tmp_path):
    trainer = Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train,
                      TrainConfig(steps=2, checkpoint_every=1, keep_checkpoints=1, out_dir=str(tmp_path),
                                  progress=False), device="cpu", tokenizer=tokenizer)  # fmt: skip
    trainer.fit()
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-0000002"]  # older ones pruned
    (tmp_path / "checkpoints" / "step-0000009.tmp").mkdir()  # a save interrupted half-way
    assert latest_checkpoint(tmp_path).name == "step-0000002"
    model, tok = load_pretrained(tmp_path)
    assert len(tok) == model.config.vocab_size
    (tmp_path / "checkpoints" / "step-0000002" / "trainer_state.pt").write_bytes(b"garbage")
    fresh = Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, TrainConfig(out_dir=str(tmp_path)), device="cpu")
    with pytest.raises(CheckpointError, match="damaged"):
        fresh.resume()


def test_phases_change_masking_and_plug_in_optimizer_and_schedule(tokenizer, tmp_path):
    d1, d2 = tiny_data(tokenizer, seed=0), tiny_data(tokenizer, seed=1, max_predictions=None)
    calls = []

    def sgd(model, config):
        return torch.optim.SGD(model.parameters(), lr=config.lr)

    def constant(step, total):
        calls.append((step, total))
        return 1.0

    phases = [Phase(2, d1.train, mask_prob=0.3), Phase(2, d2.train, mask_prob=0.1)]
    trainer = Trainer(tiny_model(tokenizer), phases, TrainConfig(progress=False, lr=0.01), optimizer_factory=sgd,
                      schedule=constant, device="cpu")  # fmt: skip
    seen = []
    for _ in range(4):
        trainer._enter_phase()
        seen.append(trainer.phase.data.collator.masker.mask_prob)
        trainer.train_step()
    assert seen == [0.3, 0.3, 0.1, 0.1] and trainer.total_steps == 4
    assert isinstance(trainer.optimizer, torch.optim.SGD) and calls[-1] == (4, 4)
    assert trainer.history[-1]["lr"] == 0.01


def test_model_without_nsp_head(tokenizer):
    d = tiny_data(tokenizer, nsp=False)
    model = tiny_model(tokenizer, nsp=False, pooler=False)
    trainer = Trainer(model, d.train, TrainConfig(steps=2, progress=False), d.eval, device="cpu")
    trainer.fit()
    assert "nsp_loss" not in trainer.history[-1] and "nsp_acc" not in trainer.evals[-1]
    assert set(d.train.instances[0].token_type_ids) == {0}


def test_bf16_autocast_step_runs(tokenizer):
    trainer = Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, TrainConfig(steps=1, precision="bf16",
                      progress=False), device="cpu")  # fmt: skip
    row = trainer.train_step()
    assert (
        torch.isfinite(torch.tensor(row["loss"]))
        and trainer.model.encoder.embeddings.tok_embeddings.weight.dtype == torch.float32
    )
    with pytest.raises(ValueError, match="precision"):
        Trainer(tiny_model(tokenizer), tiny_data(tokenizer).train, TrainConfig(precision="fp8"), device="cpu")


def test_export_gives_the_same_logits_in_transformers(tokenizer, tmp_path):
    from transformers import BertForPreTraining, pipeline

    d = tiny_data(tokenizer)
    trainer = Trainer(tiny_model(tokenizer), d.train, TrainConfig(steps=2, out_dir=str(tmp_path / "run"),
                      progress=False), device="cpu", tokenizer=tokenizer)  # fmt: skip
    trainer.fit()
    out = export_hf(tmp_path / "run", tmp_path / "hf")
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    ours, tok = load_pretrained(tmp_path / "run")
    theirs = BertForPreTraining.from_pretrained(str(out)).eval()
    batch = d.eval[0]
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        a = ours(**inputs)
        b = theirs(**inputs)
    real = batch["attention_mask"].bool()
    assert torch.allclose(a.mlm_logits[real], b.prediction_logits[real], atol=1e-4)
    assert torch.allclose(a.nsp_logits, b.seq_relationship_logits, atol=1e-4)
    fill = pipeline("fill-mask", model=str(out), tokenizer=str(out), device="cpu")
    text = "the capital of france is [MASK]."
    assert fill(text, top_k=1)[0]["token_str"] == fill_mask(ours, tok, text, top_k=1)[0][0][0]
    with pytest.raises(ValueError, match="MASK"):
        fill_mask(ours, tok, "no mask here")


class PostLNBlock(nn.Module):
    """A BERT block written from scratch, as a learner writes it (chapter 05): no minibert classes inside."""

    def __init__(self, C: int, H: int, I: int, eps: float = 1e-12):
        super().__init__()
        self.H = H
        self.Wqkv, self.Wo = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.ln1, self.ln2 = nn.LayerNorm(C, eps=eps), nn.LayerNorm(C, eps=eps)
        self.W1, self.W2 = nn.Linear(C, I), nn.Linear(I, C)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.H, -1).transpose(1, 2) for t in self.Wqkv(x).split(C, dim=-1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.H)
        if keep is not None:
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        a = self.Wo((scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C))
        h = self.ln1(x + a)
        return self.ln2(h + self.W2(F.gelu(self.W1(h))))


RENAMES = {"attn.Wqkv.": "Wqkv.", "attn.Wo.": "Wo.", "attn_norm.": "ln1.", "mlp.Wi.": "W1.", "mlp.Wo.": "W2.",
           "mlp_norm.": "ln2."}  # fmt: skip


def as_post_ln_blocks(state: dict) -> dict:
    """The package model's weights under the names of PostLNBlock."""
    out = {}
    for name, tensor in state.items():
        if name.startswith("encoder.layers."):
            head, rest = name.split(".", 3)[:3], name.split(".", 3)[3]
            prefix = next(p for p in RENAMES if rest.startswith(p))
            name = ".".join(head) + "." + RENAMES[prefix] + rest[len(prefix) :]
        out[name] = tensor
    return out


def test_a_block_written_outside_the_package_plugs_in_and_trains(tokenizer):
    from minibert.encoder import EncoderBlock, inference

    make = lambda config, layer: PostLNBlock(config.hidden_size, config.num_heads, config.intermediate_size,
                                             config.norm_eps)  # fmt: skip
    theirs = tiny_model(tokenizer, hidden_dropout=0.0, attention_dropout=0.0)
    torch.manual_seed(0)
    mine = EncoderForPreTraining(theirs.config, block=make)
    assert all(isinstance(b, PostLNBlock) for b in mine.encoder.layers)
    mine.load_state_dict(as_post_ln_blocks(theirs.state_dict()))  # strict: every tensor has its place

    stream = tiny_data(tokenizer).train
    some = sorted(stream.instances, key=len)[::50]  # sequences of many lengths: padded, so the mask reaches the blocks
    batch = stream.collator(some, torch.Generator().manual_seed(0))
    assert not bool(batch["attention_mask"].all())
    for model in (mine, theirs):
        model.eval()
    with torch.no_grad():
        a, b = pretraining_sums(mine, batch), pretraining_sums(theirs, batch)
        assert not inference.applies(mine.encoder, torch.zeros(1, 1, 32))  # only the package's blocks take it
    assert torch.allclose(a[0], b[0], rtol=1e-5) and torch.allclose(a[1], b[1], rtol=1e-5)

    runs = []
    for model in (mine, theirs):
        trainer = Trainer(model, tiny_data(tokenizer).train, TrainConfig(steps=20, lr=5e-3, progress=False),
                          device="cpu")  # fmt: skip
        trainer.fit()
        runs.append(losses(trainer))
    assert runs[0][0] == pytest.approx(runs[1][0], abs=1e-5)  # the same function at step 0
    assert sum(runs[0][-5:]) / 5 < runs[0][0] - 1.0  # and the learner's block learns
    assert runs[0][:3] == pytest.approx(runs[1][:3], abs=1e-3)

    class Changed(EncoderBlock):  # a subclass with its own forward must run it, even where the fast path applies
        def forward(self, x, state=None, return_probs=False):
            return torch.zeros_like(x), None

    changed = EncoderForPreTraining(theirs.config, block=Changed).eval()
    with torch.no_grad():
        out = changed.encoder(batch["input_ids"], batch["attention_mask"])
    assert torch.count_nonzero(out.last_hidden_state) == 0
    with pytest.raises(ValueError, match="return_probs"):
        mine.encoder(batch["input_ids"], batch["attention_mask"], output_attentions=True)

    class Narrow(nn.Module):
        def forward(self, x, mask=None):
            return x[..., :3]

    with pytest.raises(ValueError, match="same shape"):
        EncoderForPreTraining(theirs.config, block=lambda config, layer: Narrow())(batch["input_ids"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKER = textwrap.dedent(
    """
    import json, sys, torch
    from minibert import EncoderConfig, EncoderForPreTraining, hf, pretrain, text
    from minibert.text import BertTokenizer
    from minibert.pretrain import Trainer, TrainConfig, init_distributed

    rank, world, device = init_distributed()
    torch.set_num_threads(1)
    tok = BertTokenizer.from_pretrained(hf.minilm_path())
    d = pretrain.make_pretraining_data(tok, batch_size=8, max_seq_length=64, max_documents=8, max_eval_batches=2,
                                   eval_batch_size=8)
    torch.manual_seed(0)
    config = EncoderConfig(vocab_size=len(tok), hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64,
                           max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0)
    model = EncoderForPreTraining(config)
    trainer = Trainer(model, d.train, TrainConfig(steps=4, micro_batch_size=int(sys.argv[2]), lr=3e-3,
                      eval_every=4, progress=False), d.eval, device="cpu")
    trainer.fit()
    if rank == 0:
        weights = {k: v.flatten()[:50].tolist() for k, v in model.state_dict().items()}
        json.dump({"world": world, "losses": [r["loss"] for r in trainer.history], "eval": trainer.evals[-1],
                   "weights": weights}, open(sys.argv[1], "w"))
    """
)


@pytest.mark.slow
@pytest.mark.skipif(
    sys.platform != "linux",
    reason="torchrun with gloo is tested on Linux only: on macOS and Windows its rendezvous and gloo's transport "
    "need per-machine network settings (GLOO_SOCKET_IFNAME, the TCP store's backend)",
)
def test_torchrun_two_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
                "--master_addr=127.0.0.1"]  # fmt: skip
    runs = [  # started together: the two launches overlap
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in (
            [sys.executable, str(script), str(tmp_path / "one.json"), "8"],  # one process, one batch of 8
            torchrun + [str(script), str(tmp_path / "two.json"), "2"],  # 2 ranks x 2 micro-batches of 2
        )
    ]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-3000:]
    one, two = (json.loads((tmp_path / f"{n}.json").read_text(encoding="utf-8")) for n in ("one", "two"))
    assert one["world"] == 1 and two["world"] == 2
    assert two["losses"] == pytest.approx(one["losses"], abs=1e-5)
    assert two["eval"]["mlm_loss"] == pytest.approx(one["eval"]["mlm_loss"], abs=1e-5)
    assert two["eval"]["nsp_acc"] == one["eval"]["nsp_acc"]
    for k, v in one["weights"].items():
        assert v == pytest.approx(two["weights"][k], abs=1e-5), k


def test_the_recipe_runs_in_phases_and_the_course_model_is_kept_from_a_smaller_profile(
    tokenizer, tmp_path, monkeypatch
):
    from minibert.pretrain import Recipe, course_model_info, course_model_path, recipe_trainer, save_course_model

    monkeypatch.setenv("MINIBERT_CACHE", str(tmp_path / "cache"))
    assert course_model_path() == tmp_path / "cache" / "models" / "chapter07"
    recipe = Recipe(phases=((16, 8, 0.5), (32, 4, 0.5)), decay=0.5, lr=3e-3)
    trainer = recipe_trainer(recipe, tokenizer, steps=6, evals=2, max_documents=8, max_eval_batches=1,
                             device="cpu", progress=False)  # fmt: skip
    trainer.fit()
    assert [p.steps for p in trainer.phases] == [3, 3] and [e["step"] for e in trainer.evals] == [3, 6]
    assert [len(p.data.instances[0]) <= n for p, (n, *_) in zip(trainer.phases, recipe.phases)] == [True, True]
    assert trainer.history[-1]["lr"] == pytest.approx(3e-3 * recipe.schedule()(5, 6))
    assert trainer.evals[-1]["nsp_acc"] >= 0

    assert save_course_model(trainer.model, tokenizer, {"profile": "laptop", "steps": 6}) == course_model_path()
    model, tok = load_pretrained(course_model_path())
    assert course_model_info()["steps"] == 6 and len(tok) == model.config.vocab_size
    assert save_course_model(trainer.model, tokenizer, {"profile": "smoke", "steps": 1}) is None  # kept
    assert course_model_info()["steps"] == 6
    assert save_course_model(trainer.model, tokenizer, {"profile": "full", "steps": 9}) == course_model_path()
    assert course_model_info()["steps"] == 9 and not list((tmp_path / "cache" / "models").glob(".*"))
    with pytest.raises(ValueError, match="profile"):
        save_course_model(trainer.model, tokenizer, {"steps": 1})
    with pytest.raises(ValueError, match="add up"):
        Recipe(phases=((32, 8, 0.5),))
    with pytest.raises(ValueError, match="minutes or as steps"):
        recipe_trainer(recipe, tokenizer)


def test_plan_minutes_shares_the_steps_over_phases(tokenizer):
    d1, d2 = tiny_data(tokenizer), tiny_data(tokenizer, max_seq_length=32)
    trainer = Trainer(tiny_model(tokenizer), [Phase(10, d1.train), Phase(10, d2.train)], TrainConfig(progress=False),
                      device="cpu")  # fmt: skip
    steps = trainer.plan_minutes(0.05, shares=[0.75, 0.25])
    assert steps == trainer.total_steps == sum(p.steps for p in trainer.phases) >= 4
    assert trainer.phases[0].steps == round(0.75 * steps) and trainer.step == 0 and not trainer.history
    with pytest.raises(ValueError, match="shares"):
        trainer.plan_minutes(1.0)


def test_steps_are_shared_out_over_phases_by_their_shares():
    from minibert.pretrain import split_steps, warmup_then_decay, wsd

    assert split_steps(100, [0.9, 0.1]) == [90, 10]
    assert split_steps(7, [1.0]) == [7]
    assert split_steps(5, [0.3, 0.3, 0.3, 0.1]) == [2, 2, 2, 0]  # the rounding never leaves a phase below 0
    assert warmup_then_decay(0.1, 0.2)(95, 100) == wsd(0.1, 0.2, shape="1-sqrt")(95, 100)
    assert warmup_then_decay(0.1)(50, 100) == pytest.approx(50 / 90)  # linear from the peak at step 10 to 0 at 100
