"""Fine-tuning and sentence embeddings: pooling by hand, masking, the classifier on a separable toy set, folds,
metrics and the probe against scikit-learn, MiniLM embeddings against transformers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from minibert import EncoderConfig, EncoderForSequenceClassification
from minibert import finetune as ft
from minibert.encoder import Encoder, EncoderOutput

# ---------------------------------------------------------------------------------------------------------------
# Pooling against hand computations

H = torch.tensor([[[1.0, 10.0], [3.0, -2.0], [100.0, 100.0]]])  # (1, 3, 2): the third token is padding
M = torch.tensor([[1, 1, 0]])


def test_pooling_by_hand():
    assert torch.equal(ft.cls_pooling(H, M), torch.tensor([[1.0, 10.0]]))
    assert torch.equal(ft.mean_pooling(H, M), torch.tensor([[2.0, 4.0]]))  # (1+3)/2, (10-2)/2
    assert torch.equal(ft.max_pooling(H, M), torch.tensor([[3.0, 10.0]]))  # padding's 100 never wins
    # weights 1 and 2 for positions 1 and 2: (1*1 + 2*3)/3, (1*10 + 2*-2)/3
    assert torch.allclose(ft.weighted_mean_pooling(H, M), torch.tensor([[7 / 3, 2.0]]))
    # without a mask every token counts
    assert torch.allclose(ft.mean_pooling(H), torch.tensor([[104 / 3, 36.0]]))
    assert torch.equal(ft.max_pooling(H), torch.tensor([[100.0, 100.0]]))


def test_pooling_ignores_whatever_sits_in_padding():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 7, 5, generator=g)
    mask = torch.tensor([[1] * 7, [1] * 3 + [0] * 4, [1] * 5 + [0] * 2, [1] + [0] * 6])
    noisy = torch.where(mask[..., None].bool(), h, torch.randn(4, 7, 5, generator=g) * 1e3)
    for name, fn in ft.TOKEN_POOLINGS.items():
        assert torch.allclose(fn(h, mask), fn(noisy, mask)), name
        for i, n in enumerate(mask.sum(1).tolist()):  # equal to pooling the unpadded row alone
            alone = fn(h[i : i + 1, :n], None)
            assert torch.allclose(fn(h, mask)[i : i + 1], alone, atol=1e-6), name


def test_layer_strategies_read_the_right_layers():
    g = torch.Generator().manual_seed(1)
    hs = tuple(torch.randn(2, 4, 3, generator=g) for _ in range(5))  # embeddings + 4 blocks
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    out = EncoderOutput(last_hidden_state=hs[-1], pooler_output=torch.ones(2, 3), hidden_states=hs)
    assert torch.equal(ft.pool(out, mask, "mean_second_to_last"), ft.mean_pooling(hs[-2], mask))
    assert torch.allclose(ft.pool(out, mask, "mean_first_last"), ft.mean_pooling((hs[1] + hs[-1]) / 2, mask))
    assert torch.allclose(ft.pool(out, mask, "mean_last_four"), ft.mean_pooling(sum(hs[1:]), mask), atol=1e-6)
    assert torch.equal(ft.pool(out, mask, "pooler"), torch.ones(2, 3))
    assert torch.allclose(ft.layer_mix(hs[:2], [0.25, 0.75]), 0.25 * hs[0] + 0.75 * hs[1])


def test_pooling_errors_say_what_to_do():
    out = EncoderOutput(last_hidden_state=H)
    with pytest.raises(ValueError, match="output_hidden_states=True"):
        ft.pool(out, M, "mean_second_to_last")
    with pytest.raises(ValueError, match="no pooler"):
        ft.pool(out, M, "pooler")
    with pytest.raises(ValueError, match="unknown pooling"):
        ft.pool(out, M, "median")
    with pytest.raises(ValueError, match="mask has shape"):
        ft.mean_pooling(H, torch.ones(1, 4))
    with pytest.raises(ValueError, match="2 layers"):
        ft.layer_mix((H, H), [1.0])


# ---------------------------------------------------------------------------------------------------------------
# A tiny encoder and a separable toy task

TINY = EncoderConfig(
    vocab_size=30, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=32
)


def toy_data(n: int = 96, seed: int = 0) -> ft.Encoded:
    """Label 1 when token 5 appears, 0 when token 6 does; the rest is noise of random length."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, 12, dtype=torch.long)
    mask = torch.zeros(n, 12, dtype=torch.long)
    labels = torch.arange(n) % 2
    for i in range(n):
        length = int(torch.randint(4, 13, (1,), generator=g))
        ids[i, :length] = torch.randint(7, 30, (length,), generator=g)
        ids[i, 0] = 2  # [CLS]
        ids[i, int(torch.randint(1, length, (1,), generator=g))] = 5 if labels[i] else 6
        mask[i, :length] = 1
    return ft.Encoded(ids, mask, torch.zeros_like(ids), labels)


def test_embed_is_the_same_padded_or_alone_and_keeps_order():
    torch.manual_seed(0)
    enc = Encoder(TINY).eval()
    data = toy_data(10)
    batched = ft.embed(enc, data, pooling=["mean", "max", "mean_second_to_last", "cls"], batch_size=4)
    for i in range(len(data)):
        n = int(data.lengths[i])
        alone = ft.embed(enc, ft.Encoded(data.input_ids[i : i + 1, :n], data.attention_mask[i : i + 1, :n]))
        assert torch.allclose(batched["mean"][i], alone[0], atol=1e-5)
    assert torch.allclose(batched["mean"].norm(dim=-1), torch.ones(10))
    assert set(batched) == {"mean", "max", "mean_second_to_last", "cls"}
    assert enc.training is False


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_full_finetuning_learns_a_separable_toy_set(pooling):
    torch.manual_seed(0)
    data = toy_data(160)
    train, val, test = data.subset(range(96)), data.subset(range(96, 128)), data.subset(range(128, 160))
    model = EncoderForSequenceClassification(Encoder(TINY), num_labels=2, pooling=pooling)
    assert ft.set_trainable(model, "full") == sum(p.numel() for p in model.parameters())
    cfg = ft.FinetuneConfig(epochs=15, lr=2e-3, head_lr=2e-3, batch_size=8, patience=6)  # test loss 0.004 by then
    before = ft.evaluate(model, test)["accuracy"]
    fit = ft.fit_classifier(model, train, val, cfg)
    after = ft.evaluate(model, test)
    assert after["accuracy"] == 1.0 and after["f1"] == 1.0, (before, after, fit.history)
    # the weights kept are the best epoch's: their validation loss is the lowest seen
    best = min(h["val_loss"] for h in fit.history)
    assert fit.history[fit.best_epoch - 1]["val_loss"] == best
    assert ft.evaluate(model, val)["loss"] == pytest.approx(best, rel=1e-5)


def test_probe_trains_only_the_head_and_early_stopping_stops():
    torch.manual_seed(0)
    data = toy_data(64)
    model = EncoderForSequenceClassification(Encoder(TINY), pooling="mean")
    n = ft.set_trainable(model, "probe")
    assert n == 32 * 2 + 2
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    # a learning rate this large overshoots: validation loss soon stops improving
    cfg = ft.FinetuneConfig(epochs=40, head_lr=5.0, batch_size=8, patience=2)
    fit = ft.fit_classifier(model, data.subset(range(48)), data.subset(range(48, 64)), cfg)
    assert fit.stopped_early and len(fit.history) < 40
    assert len(fit.history) - fit.best_epoch == 2  # stopped after `patience` epochs without progress
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in frozen.items())


def test_set_trainable_top_blocks_and_embeddings():
    model = EncoderForSequenceClassification(Encoder(TINY), pooling="cls")
    n_top = ft.set_trainable(model, 1)
    block = sum(p.numel() for p in model.encoder.layers[1].parameters())
    assert n_top == block + 32 * 2 + 2
    assert not any(p.requires_grad for p in model.encoder.layers[0].parameters())
    n_full = ft.set_trainable(model, "full", freeze_embeddings=True)
    assert n_full == sum(p.numel() for p in model.parameters()) - sum(
        p.numel() for p in model.encoder.embeddings.parameters()
    )
    with pytest.raises(ValueError, match="probe"):
        ft.set_trainable(model, "linear")
    with pytest.raises(ValueError, match="2 blocks"):
        ft.set_trainable(model, 3)


def test_the_classifier_is_berts_head_by_default():
    torch.manual_seed(0)
    model = EncoderForSequenceClassification(TINY, num_labels=3).eval()
    assert model.pooling == "pooler"
    data = toy_data(6)
    b = data.batch(range(6))
    out = model.encoder(**b)
    by_hand = model.classifier(out.pooler_output)  # dropout is off in eval mode
    assert torch.allclose(model(**b), by_hand, atol=1e-6)
    assert torch.allclose(ft.predict(model, data), by_hand, atol=1e-5)  # predict undoes its length sorting
    no_pooler = EncoderForSequenceClassification(TINY.replace(pooler=False, nsp=False))
    assert no_pooler.pooling == "cls"  # ModernBERT and EuroBERT have no pooler: the [CLS] vector


def test_finetune_fold_and_cross_validate_on_the_toy_set():
    torch.manual_seed(0)
    data = toy_data(120)
    folds = ft.kfold(len(data), 3, labels=data.labels, seed=0)
    cfg = ft.FinetuneConfig(epochs=15, lr=2e-3, head_lr=2e-3, batch_size=8, patience=6)  # test loss 0.004 by then
    make = lambda: EncoderForSequenceClassification(Encoder(TINY), pooling="mean")
    cv = ft.cross_validate(lambda tr, te: ft.finetune_fold(make, data, tr, te, cfg), data.labels, folds)
    assert len(cv.accuracy) == 3 and min(cv.accuracy) >= 0.9, cv.accuracy
    assert all(1 <= e["best_epoch"] <= e["epochs"] for e in cv.extra)
    assert cv.summary().count("±") == 1


def finetune_by_hand(model, train: ft.Encoded, epochs: int, lr: float, head_lr: float, batch_size: int) -> list[float]:
    """Chapter 08's loop written out: batches, forward, loss, backward, clip, step, schedule."""
    from minibert.pretrain import linear_warmup_decay, lr_scheduler, param_groups

    torch.manual_seed(0)  # dropout
    order = torch.Generator().manual_seed(0)  # batches
    groups = param_groups(model, weight_decay=0.01, head=model.head_parameters(), head_lr=head_lr)
    optimizer = torch.optim.AdamW(groups, lr=lr)
    total = epochs * -(-len(train) // batch_size)
    schedule = lr_scheduler(optimizer, linear_warmup_decay(0.1), total)
    losses = []
    for _ in range(epochs):
        model.train()
        for idx in ft.shuffled_batches(train.lengths, batch_size, order):
            loss = F.cross_entropy(model(**train.batch(idx)), train.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
    return losses


def test_a_hand_written_loop_takes_the_same_steps_as_fit_classifier():
    data = toy_data(64)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(EncoderForSequenceClassification(Encoder(TINY), pooling="pooler"))
    by_hand = finetune_by_hand(models[0], data, epochs=3, lr=1e-3, head_lr=3e-3, batch_size=16)
    cfg = ft.FinetuneConfig(epochs=3, lr=1e-3, head_lr=3e-3, batch_size=16)
    fit = ft.fit_classifier(models[1], data, config=cfg)
    assert len(fit.step_losses) == len(by_hand) == 12
    assert fit.step_losses == pytest.approx(by_hand, abs=1e-5)  # dropout, batches, optimizer, schedule: all the same
    assert by_hand[0] != pytest.approx(by_hand[-1], abs=1e-3)  # and the steps did something


def test_bad_training_input_is_refused():
    data = toy_data(8)
    model = EncoderForSequenceClassification(Encoder(TINY))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        ft.fit_classifier(model, ft.Encoded(data.input_ids, data.attention_mask, labels=torch.arange(8)))
    with pytest.raises(ValueError, match="no labels"):
        ft.fit_classifier(model, ft.Encoded(data.input_ids, data.attention_mask))
    with pytest.raises(ValueError, match="right"):
        ft.Encoded(torch.ones(1, 3, dtype=torch.long), torch.tensor([[0, 1, 1]]))
    with pytest.raises(ValueError, match="3 labels for 1"):
        ft.Encoded(torch.ones(1, 3, dtype=torch.long), torch.ones(1, 3, dtype=torch.long), labels=torch.zeros(3))
    with pytest.raises(ValueError, match="nothing to train"):
        for p in model.parameters():
            p.requires_grad_(False)
        ft.fit_classifier(model, data)


# ---------------------------------------------------------------------------------------------------------------
# Folds and metrics


def test_shuffled_batches_cover_every_item_once_with_little_padding():
    lengths = torch.randint(1, 60, (203,), generator=torch.Generator().manual_seed(0))
    batches = ft.shuffled_batches(lengths, 16, torch.Generator().manual_seed(1))
    assert sorted(torch.cat(batches).tolist()) == list(range(203))
    assert len(batches) == 13 and all(len(b) == 16 for b in batches if len(b) != 203 % 16)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches)
    random = sum(len(b) * int(lengths[b].max()) for b in torch.randperm(203).split(16))
    assert padded < 0.85 * random
    again = ft.shuffled_batches(lengths, 16, torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_kfold_partitions_and_stratifies():
    y = np.array([0] * 30 + [1] * 10)
    folds = ft.kfold(40, 5, labels=y, seed=3)
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(40))  # every item tested exactly once
    for tr, te in folds:
        assert np.intersect1d(tr, te).size == 0 and len(tr) + len(te) == 40
        assert (y[te] == 1).sum() == 2 and (y[te] == 0).sum() == 6  # class balance kept
    again = ft.kfold(40, 5, labels=y, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, ft.kfold(40, 5, labels=y, seed=4)))
    with pytest.raises(ValueError, match="2 <= k <= n"):
        ft.kfold(3, 5)


def test_train_val_split_is_stratified_and_disjoint():
    y = np.array([0, 1] * 20)
    fit, val = ft.train_val_split(np.arange(32), y, fraction=0.25)
    assert np.intersect1d(fit, val).size == 0 and len(fit) + len(val) == 32
    assert (y[val] == 0).sum() == (y[val] == 1).sum() == 4


def test_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for k in (2, 4):
        t, p = rng.integers(0, k, 50), rng.integers(0, k, 50)
        assert ft.accuracy(p, t) == pytest.approx((p == t).mean())
        avg = "binary" if k == 2 else "macro"
        assert ft.f1_score(p, t, average=avg) == pytest.approx(f1_score(t, p, average=avg))
    assert ft.f1_score([0, 0], [0, 0]) == 0.0  # no positives anywhere: scikit-learn's zero_division=0
    m, s = ft.mean_std([0.7, 0.8, 0.9])
    assert m == pytest.approx(0.8) and s == pytest.approx(0.1)
    assert ft.mean_std([0.5]) == (0.5, 0.0)
    cv = ft.CVResult()
    cv.add([1, 1, 0, 0], [1, 0, 0, 0])
    cv.add([1, 1, 1, 1], [1, 1, 1, 1])
    assert cv.accuracy == [0.75, 1.0] and cv.f1 == pytest.approx([2 / 3, 1.0])
    assert cv.summary() == "87.5 ± 17.7"


def test_cross_validate_refuses_leaky_folds():
    with pytest.raises(ValueError, match="overlap"):
        ft.cross_validate(lambda tr, te: np.zeros(len(te)), [0, 1, 0, 1], [(np.array([0, 1, 2]), np.array([2, 3]))])


@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_regression_matches_scikit_learn(classes):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(classes)
    X = rng.normal(size=(120, 6))
    y = (X[:, :classes] + 0.8 * rng.normal(size=(120, classes))).argmax(1)
    ours = ft.LogisticRegression(C=0.5).fit(X[:90], y[:90])
    ref = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X[:90], y[:90])
    expected = ref.predict_proba(X[90:])
    assert np.allclose(ours.predict_proba(X[90:]), expected, atol=1e-4)  # both at the optimum: ~1e-7 apart
    top2 = np.sort(expected, axis=1)[:, -2:]
    assert (top2[:, 1] - top2[:, 0]).min() > 1e-3  # no near-tie, so the predicted classes must agree exactly
    assert np.array_equal(ours.predict(X[90:]), ref.predict(X[90:]))
    with pytest.raises(ValueError, match="two classes"):
        ft.LogisticRegression().fit(X[:5], np.zeros(5))


def test_probe_fold_standardises_with_training_rows_only():
    X = np.array([[0.0], [2.0], [4.0], [100.0]])
    a, b = ft.standardize(X[:3], X[3:])
    assert np.allclose(a.mean(0), 0) and np.allclose(a.std(0), 1)
    assert b[0, 0] == pytest.approx((100 - 2) / np.std([0, 2, 4]))
    y = np.array([0, 0, 1, 1, 0, 1])
    X = np.array([[-2.0], [-1.0], [1.0], [2.0], [-3.0], [3.0]])
    for scale in (False, True):
        assert ft.probe_fold(X, y, np.arange(4), np.arange(4, 6), scale=scale).tolist() == [0, 1]


# ---------------------------------------------------------------------------------------------------------------
# Cosine search


def test_cosine_search_and_retrieval_scores_by_hand():
    corpus = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    scores, idx = ft.cosine_search(torch.tensor([3.0, 0.1]), corpus, k=2)
    assert idx.tolist() == [[0, 2]]
    assert scores[0, 1].item() == pytest.approx(float(F.cosine_similarity(torch.tensor([3.0, 0.1]), corpus[2], 0)))
    assert ft.cosine_search(corpus, corpus, k=10)[1].shape == (3, 3)  # k is capped by the corpus size
    queries = torch.tensor([[1.0, 0.1], [0.1, 1.0]])
    # query 0's answer (row 0) ranks first; query 1's answer (row 2) ranks second behind row 1
    r = ft.retrieval_scores(queries, corpus, [0, 2])
    assert r == {"recall@1": 0.5, "recall@5": 1.0, "mrr": 0.75}
    with pytest.raises(ValueError, match="same encoder"):
        ft.cosine_search(torch.ones(3), corpus)


# ---------------------------------------------------------------------------------------------------------------
# Real text: the tokenizer's pair layout, and MiniLM sentence embeddings against transformers


@pytest.fixture(scope="module")
def minilm_tokenizer():
    from minibert.hf import minilm_path
    from minibert.text import BertTokenizer

    return BertTokenizer.from_pretrained(minilm_path())


def test_encode_pairs_lays_out_segments(minilm_tokenizer):
    tok = minilm_tokenizer
    data = ft.encode(tok, ["the cat sat", "hello"], pairs=["on the mat", "world again"], labels=[1, 0])
    tokens = tok.convert_ids_to_tokens(data.input_ids[0].tolist())
    assert tokens == ["[CLS]", "the", "cat", "sat", "[SEP]", "on", "the", "mat", "[SEP]"]
    assert data.token_type_ids[0].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert data.attention_mask[1].tolist() == [1] * 6 + [0] * 3  # [CLS] hello [SEP] world again [SEP]
    assert data.labels.tolist() == [1, 0]
    with pytest.raises(TypeError, match="list of texts"):
        ft.encode(tok, "one text")
    with pytest.raises(ValueError, match="1 second segments for 2 texts"):
        ft.encode(tok, ["a", "b"], pairs=["c"])


def test_minilm_mean_embeddings_match_transformers(minilm_tokenizer):
    from transformers import BertModel

    from minibert.hf import load_minilm, minilm_path

    texts = ["A man is playing a guitar.", "The film is long, dull and far too loud.", "ok"]
    ours = ft.embed(load_minilm(), ft.encode(minilm_tokenizer, texts), pooling="mean")
    ref_model = BertModel.from_pretrained(str(minilm_path())).eval()
    b = minilm_tokenizer(texts)
    with torch.no_grad():
        h = ref_model(**b).last_hidden_state
    m = b["attention_mask"][..., None].float()
    ref = F.normalize((h * m).sum(1) / m.sum(1), dim=-1)  # sentence-transformers' recipe: mean, then normalise
    assert torch.allclose(ours, ref, atol=1e-5)
