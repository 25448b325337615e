"""ModernBERT: parity with transformers offline, the fast attention paths, unpadding, packing and the recipe."""

import json

import pytest
import torch
import torch.nn.functional as F
from parity_helpers import assert_matches, maxdiff, padded_batch, randomise
from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel

from minibert import EncoderForPreTraining, hf, preset
from minibert.config import pad_vocab_size
from minibert.encoder import Encoder, local_attention, sliding_window_mask, varlen_attention
from minibert.pretrain import StableAdamW, lr_scheduler, param_groups, wsd, wsd_factor

WINDOW = 16  # a token sees 8 on each side: the test sequences (50 tokens) are much longer


def tiny_hf_config(**kw) -> ModernBertConfig:
    base = dict(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=5,  # layers 0 and 3 global, 1, 2, 4 local
        num_attention_heads=4,
        local_attention=WINDOW,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        cls_token_id=1,
        sep_token_id=2,
        attn_implementation="sdpa",
    )
    return ModernBertConfig(**{**base, **kw})


def batch(vocab: int = 128, seed: int = 0):
    return padded_batch((50, 31, 7), low=3, vocab=vocab, seed=seed)


@pytest.fixture(scope="module")
def mlm_pair():
    ref = randomise(ModernBertForMaskedLM(tiny_hf_config()), 0)
    return ref, hf.from_pretrained(ref.state_dict(), config=hf.config_from_hf(ref.config.to_dict()))


@pytest.mark.parametrize("unpad", [False, True])
def test_masked_lm_matches_transformers_with_padding(mlm_pair, unpad):
    ref, mine = mlm_pair
    ids, mask = batch()
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask).logits
        o = mine(ids, mask, unpad=unpad).mlm_logits
    assert r.abs().max() > 1  # the logits are not all near zero
    assert_matches(o, r, mask.bool())  # padding positions hold no meaning in either model


def test_model_matches_transformers_without_padding():
    ref = randomise(ModernBertModel(tiny_hf_config(num_hidden_layers=4, hidden_activation="gelu")), 1)
    mine = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.config_from_hf(ref.config.to_dict()))
    ids, _ = batch()
    with torch.no_grad():
        assert_matches(mine(ids).last_hidden_state, ref(input_ids=ids).last_hidden_state)
        mask = torch.ones_like(ids)
        mask[0, 40:] = 0
        r = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        assert_matches(mine(ids, mask).last_hidden_state, r, mask.bool())


def test_config_reads_the_hub_format_and_the_transformers5_format():
    new = hf.config_from_hf(tiny_hf_config(num_hidden_layers=7).to_dict())
    legacy = {  # the keys of answerdotai/ModernBERT-base's config.json
        "model_type": "modernbert", "vocab_size": 50368, "hidden_size": 768, "num_hidden_layers": 22,
        "num_attention_heads": 12, "intermediate_size": 1152, "hidden_activation": "gelu",
        "global_attn_every_n_layers": 3, "local_attention": 128, "global_rope_theta": 160000.0,
        "local_rope_theta": 10000.0, "max_position_embeddings": 8192, "norm_eps": 1e-05, "norm_bias": False,
        "pad_token_id": 50283, "classifier_activation": "gelu", "decoder_bias": True,
    }  # fmt: skip
    assert [new.is_global(i) for i in range(7)] == [True, False, False, True, False, False, True]
    assert hf.config_from_hf(legacy) == preset("modernbert-base")
    with pytest.raises(ValueError, match="every n-th layer"):
        hf.config_from_hf(tiny_hf_config(layer_types=["full_attention", "full_attention", "sliding_attention",
                                                      "full_attention", "full_attention"]).to_dict())  # fmt: skip


@pytest.mark.parametrize("name", ["modernbert-base", "modernbert-large"])
def test_presets_have_the_released_sizes(name):
    hf_cfg = {"modernbert-base": ModernBertConfig(), "modernbert-large": ModernBertConfig(
        hidden_size=1024, intermediate_size=2624, num_hidden_layers=28, num_attention_heads=16)}[name]  # fmt: skip
    with torch.device("meta"):
        theirs = sum(p.numel() for p in ModernBertForMaskedLM(hf_cfg).parameters())
        mine = sum(p.numel() for p in EncoderForPreTraining(preset(name)).parameters())
    assert mine == theirs
    assert round(mine / 1e6) == {"modernbert-base": 150, "modernbert-large": 396}[name]
    c = preset(name)
    assert c.vocab_size % 64 == 0 and pad_vocab_size(30522) == 30528
    assert [i for i in range(c.num_layers) if c.is_global(i)] == list(range(0, c.num_layers, 3))


def test_saved_model_loads_in_transformers(tmp_path, mlm_pair):
    _, mine = mlm_pair
    hf.save_pretrained(mine, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))["model_type"] == "modernbert"
    theirs = ModernBertForMaskedLM.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    ids, mask = batch()
    with torch.no_grad():
        assert_matches(mine(ids, mask).mlm_logits, theirs(input_ids=ids, attention_mask=mask).logits, mask.bool())
    again = hf.from_pretrained(tmp_path)  # and back from the folder
    assert again.config == mine.config


def test_transformers_folders_load(tmp_path):
    ref = randomise(ModernBertModel(tiny_hf_config()), 2)
    ref.save_pretrained(tmp_path)
    enc = hf.from_pretrained(tmp_path, model_class=Encoder)
    ids, mask = batch()
    with torch.no_grad():
        r = ref(input_ids=ids, attention_mask=mask).last_hidden_state
        assert_matches(enc(ids, mask).last_hidden_state, r, mask.bool())


def test_wrong_checkpoint_names_the_keys(mlm_pair):
    ref, mine = mlm_pair
    sd = dict(ref.state_dict())
    sd["model.layers.0.attn_norm.weight"] = torch.ones(64)  # ModernBERT has no norm before layer 0's attention
    with pytest.raises(hf.CheckpointError, match="layers.0.attn_norm"):
        hf.from_pretrained(sd, config=mine.config)


def test_probability_path_equals_fast_path(mlm_pair):
    _, mine = mlm_pair
    ids, mask = batch()
    with torch.no_grad():
        slow = mine(ids, mask, output_attentions=True)
        fast = mine(ids, mask).mlm_logits
    assert_matches(slow.mlm_logits, fast, mask.bool())
    probs = slow.encoder.attentions[1][0]  # a local layer: nothing beyond the window
    far = ~sliding_window_mask(50, WINDOW)
    assert probs[:, far].abs().max() == 0
    assert probs.shape == (4, 50, 50)


@pytest.mark.parametrize("T", [5, 9, 33, 64, 100])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_blocked_local_attention_equals_the_dense_window(T, kv_heads):
    g = torch.Generator().manual_seed(T)
    q = torch.randn(2, 4, T, 8, generator=g)
    k, v = (torch.randn(2, kv_heads, T, 8, generator=g) for _ in range(2))
    seq_ids = torch.zeros(2, T, dtype=torch.long)
    seq_ids[1, T // 3 :] = 1  # two sequences in row 1
    dense = sliding_window_mask(T, WINDOW) & (seq_ids[:, None, :, None] == seq_ids[:, None, None, :])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=kv_heads != 4)
    assert maxdiff(local_attention(q, k, v, WINDOW, seq_ids), ref) <= 1e-5
    ref0 = F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(T, WINDOW), enable_gqa=kv_heads != 4)
    assert maxdiff(local_attention(q, k, v, WINDOW), ref0) <= 1e-5


def test_blocked_local_attention_has_gradients_of_the_dense_window():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 40, 8, generator=g, requires_grad=True) for _ in range(3))
    local_attention(q, k, v, WINDOW).square().sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    F.scaled_dot_product_attention(q, k, v, attn_mask=sliding_window_mask(40, WINDOW)).square().sum().backward()
    assert max(maxdiff(a, t.grad) for a, t in zip(grads, (q, k, v))) <= 1e-5


def test_local_attention_cost_grows_linearly_with_length():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    def flops(fn, T):
        q = torch.randn(1, 4, T, 32)
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:  # matmuls the counter sees
            fn(q, q, q)
        return counter.get_total_flops()

    local = [flops(lambda q, k, v: local_attention(q, k, v, 128), T) for T in (1024, 4096)]
    dense = [flops(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), T) for T in (1024, 4096)]
    assert local[1] == 4 * local[0]  # 4x the tokens, 4x the work
    assert dense[1] == 16 * dense[0]  # 4x the tokens, 16x the work
    assert local[1] * 20 < dense[1]


def test_varlen_attention_is_per_sequence():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 30, 8, generator=g) for _ in range(3))
    cu = [0, 4, 21, 30]
    out = varlen_attention(q, k, v, cu)
    for s, e in zip(cu[:-1], cu[1:]):
        ref = F.scaled_dot_product_attention(q[:, :, s:e], k[:, :, s:e], v[:, :, s:e])
        assert maxdiff(out[:, :, s:e], ref) <= 1e-6


def test_unpadded_batch_equals_each_sequence_alone(mlm_pair):
    _, mine = mlm_pair
    ids, mask = batch()
    with torch.no_grad():
        out = mine.encoder(ids, mask, output_hidden_states=True)
        for b in range(3):
            n = int(mask[b].sum())
            alone = mine.encoder(ids[b : b + 1, :n]).last_hidden_state[0]
            assert_matches(out.last_hidden_state[b, :n], alone)
        assert out.last_hidden_state[2, 7:].abs().max() == 0  # padding comes back as zeros
        assert len(out.hidden_states) == 6 and out.hidden_states[3].shape == (3, 50, 64)


@pytest.mark.parametrize("unpad", [False, True])
def test_packed_documents_do_not_see_each_other(mlm_pair, unpad):
    _, mine = mlm_pair
    ids, _ = batch()
    docs = [ids[0, :30], ids[1, :12], ids[2, :40]]
    row = torch.cat(docs)[None]  # one packed row of 82 tokens, then 6 tokens of padding
    doc_ids = torch.cat([torch.full((len(d),), i) for i, d in enumerate(docs)])[None]
    row = F.pad(row, (0, 6))
    doc_ids = F.pad(doc_ids, (0, 6), value=2)
    mask = (torch.arange(row.size(1)) < 82).long()[None]
    with torch.no_grad():
        packed = mine.encoder(row, mask, document_ids=doc_ids, unpad=unpad).last_hidden_state[0]
        start = 0
        for d in docs:
            alone = mine.encoder(d[None]).last_hidden_state[0]
            assert_matches(packed[start : start + len(d)], alone)
            start += len(d)


def test_bad_packing_input_is_refused(mlm_pair):
    _, mine = mlm_pair
    ids, mask = batch()
    with pytest.raises(ValueError, match="document_ids has shape"):
        mine(ids, mask, document_ids=torch.zeros(3, 49, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        mine(ids, mask, document_ids=torch.full_like(ids, -1))


def test_stable_adamw_is_adamw_without_clipping_and_clips_spikes():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(8, 4), torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    opt_a = StableAdamW(a.parameters(), lr=1e-2, weight_decay=0.1, clip=False)
    opt_b = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1)
    for _ in range(5):
        x = torch.randn(16, 8)
        for m, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            m(x).square().mean().backward()
            opt.step()
    assert maxdiff(a.weight, b.weight) <= 1e-6
    # a parameter whose gradient was zero for 1000 steps (a rare token): v lags behind the new gradient and
    # AdamW's first step is 2.5x the learning rate; StableAdamW clips it to below the learning rate
    first_step = {}
    for clip in (False, True):
        p = torch.nn.Parameter(torch.zeros(100))
        opt = StableAdamW([p], lr=1e-2, betas=(0.9, 0.999), weight_decay=0.0, clip=clip)
        p.grad = torch.zeros(100)
        for _ in range(1000):
            opt.step()
        p.grad = torch.ones(100)
        opt.step()
        first_step[clip] = p.detach().abs().max().item()
    assert first_step[False] > 2e-2 and first_step[True] < 1e-2


def test_wsd_schedule_is_a_trapezoid():
    f = [wsd_factor(s, 100, 10, 20) for s in range(101)]
    assert f[0] == pytest.approx(1 / 11) and f[9] == pytest.approx(10 / 11) and f[10] == 1.0
    assert all(x == 1.0 for x in f[10:81])
    assert f[99] == pytest.approx(1 / 20) and f[100] == 0.0 and all(a > b for a, b in zip(f[80:], f[81:]))
    assert wsd_factor(90, 100, 10, 20, shape="1-sqrt") < wsd_factor(90, 100, 10, 20)
    opt = StableAdamW(param_groups(torch.nn.Linear(2, 2), 0.01, decay_embeddings=False), lr=1.0)
    sched = lr_scheduler(opt, wsd(warmup=0.1, decay=0.2), 100)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 11)
    for _ in range(50):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == 1.0 and opt.param_groups[1]["weight_decay"] == 0.0
    with pytest.raises(ValueError, match="exceed"):
        wsd_factor(0, 10, 8, 8)


def test_pack_sequences_fills_rows_and_matches_separate_runs(mlm_pair):
    from minibert.encoder import pack_sequences

    _, mine = mlm_pair
    g = torch.Generator().manual_seed(3)
    seqs = [torch.randint(3, 128, (n,), generator=g).tolist() for n in (30, 25, 20, 18, 9, 5)]
    packed = pack_sequences(seqs, max_length=40)
    assert packed["input_ids"].shape == (3, 40)  # 107 tokens in 3 rows of 40 (6 sequences would need 6)
    assert int(packed["attention_mask"].sum()) == sum(map(len, seqs))
    with torch.no_grad():
        out = mine.encoder(packed["input_ids"], packed["attention_mask"], document_ids=packed["document_ids"])
        for s in seqs:  # find each sequence in its row and compare with running it alone
            alone = mine.encoder(torch.tensor([s])).last_hidden_state[0]
            r, c = next((r, c) for r in range(3) for c in range(41 - len(s))
                        if packed["input_ids"][r, c : c + len(s)].tolist() == s)  # fmt: skip
            assert packed["position_ids"][r, c] == 0
            assert_matches(out.last_hidden_state[r, c : c + len(s)], alone)
    with pytest.raises(ValueError, match="longer than max_length"):
        pack_sequences([[1] * 50], max_length=40)


def test_models_without_segments_accept_all_zero_token_type_ids(mlm_pair):
    _, mine = mlm_pair
    ids, mask = batch()
    with torch.no_grad():
        plain = mine(ids, mask).mlm_logits
        zeros = mine(ids, mask, torch.zeros_like(ids)).mlm_logits  # what a BERT data collator hands over
    assert maxdiff(plain, zeros) == 0
    with pytest.raises(ValueError, match="no segment embeddings"):
        mine(ids, mask, torch.ones_like(ids))


def test_bf16_autocast_trains_through_the_unpadded_local_path():
    torch.manual_seed(0)
    model = EncoderForPreTraining(preset("modernbert-tiny", vocab_size=128, pad_token_id=0))
    ids, mask = batch()
    with torch.no_grad():
        ref = model(ids, mask).mlm_logits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(ids, mask).mlm_logits
    out.float().square().mean().backward()
    assert out.dtype == torch.bfloat16
    assert maxdiff(out.float(), ref, mask.bool()) < 0.1 * ref.abs().max()
    assert all(p.grad is not None for p in model.parameters())
