"""Exercises and questions of chapter 08, fine-tuning and sentence embeddings (solutions/08_fine_tuning.ipynb)."""

from __future__ import annotations

import numpy as np
import torch

from ... import finetune as ft
from ...config import EncoderConfig, preset
from ...finetune import EncoderForSequenceClassification
from ..spec import Case, Exercise, Question, seeded_tensors


def _pooling_cases() -> list:
    hidden, noise = seeded_tensors((3, 6, 4), (3, 6, 4), seed=1)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    hidden = torch.where(mask[..., None].bool(), hidden, 1000 * noise)  # padding holds large junk
    return [Case((hidden, mask), "padding holds large numbers"), Case((hidden[:1], mask[:1]), "no padding")]


def _head_cases() -> list:
    config = EncoderConfig(
        vocab_size=50, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=16
    )
    torch.manual_seed(2)
    model = EncoderForSequenceClassification(config, num_labels=3).eval()
    ids = torch.randint(1, 50, (4, 9), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    mask[3, 2:] = 0
    return [Case((model, ids, mask), "rows 1 and 3 padded")]


def _no_whole_model(fn, args) -> str | None:
    model = args[0]
    calls = []
    handle = model.register_forward_pre_hook(lambda module, inputs: calls.append(1))
    try:
        fn(*args)
    finally:
        handle.remove()
    if calls:
        return ("it calls model(...), which runs the whole classifier. Run model.encoder(...), then the head's "
                "two steps yourself: the pooler's dense layer and tanh on [CLS], then model.classifier.")  # fmt: skip
    return None


def _f1_cases() -> list:
    pred, target = torch.randint(0, 2, (2, 40), generator=torch.Generator().manual_seed(3))
    return [
        (pred, target),
        Case((torch.ones(8, dtype=torch.long), target[:8]), "every prediction positive"),
        Case((torch.zeros(5, dtype=torch.long),) * 2, "no positives at all"),
    ]


def _reference_fold(features, labels, train_idx, test_idx):
    train, test = ft.standardize(features[train_idx], features[test_idx])
    return ft.LogisticRegression(C=1.0).fit(train, labels[train_idx]).predict_proba(test)


def _fold_cases() -> list:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1], 30)
    features = rng.normal(size=(60, 5)) * [1, 10, 100, 0.1, 1] + labels[:, None] * [1, 5, 0, 0, 0.5]
    features[:, 3] = 7.0  # a constant feature: its standard deviation is 0
    folds = ft.kfold(60, 3, labels, seed=0)
    features[folds[0][1]] += 3.0  # the first fold's test rows are shifted: leakage would show
    label = "fold {} of 3" + " (its test rows are shifted)"
    return [Case((features, labels, tr, te), label.format(i + 1) if i == 0 else f"fold {i + 1} of 3")
            for i, (tr, te) in enumerate(folds)]  # fmt: skip


def _head_parameters() -> int:
    with torch.device("meta"):
        model = EncoderForSequenceClassification(preset("bert-base"), num_labels=2)
    return sum(p.numel() for p in model.classifier.parameters())


ITEMS = [
    Exercise(
        id="08.1",
        function="mean_pooling",
        cases=_pooling_cases,
        reference=ft.mean_pooling,
        args=("hidden", "mask"),
        dims=("sentence", "feature"),
        hints=(
            "Average the vectors of the real tokens only: padding must contribute nothing to the sum and nothing "
            "to the count.",
            "Turn the mask into floats of shape (B, T, 1) so it broadcasts over the features; multiply, sum over T, "
            "and divide by the mask's sum over T (at least 1).",
            "m = mask[..., None].to(hidden.dtype); return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)",
        ),
    ),
    Exercise(
        id="08.2",
        function="classifier_logits",
        cases=_head_cases,
        reference=lambda m, i, a: m(i, a),
        method=_no_whole_model,
        args=("model", "input_ids", "attention_mask"),
        dims=("sentence", "label"),
        hints=(
            "BERT classifies a text from the vector of its first token, [CLS], after the encoder: the pooler "
            "(a dense layer and tanh) and then a linear layer to the labels.",
            "h = model.encoder(input_ids, attention_mask).last_hidden_state is (B, T, C); h[:, 0] is [CLS]. "
            "Apply model.encoder.pooler.dense, then torch.tanh, then model.classifier.",
            "pooled = torch.tanh(model.encoder.pooler.dense(h[:, 0])); return model.classifier(pooled)",
        ),
    ),
    Exercise(
        id="08.3",
        function="f1",
        cases=_f1_cases,
        reference=ft.f1_score,
        args=("pred", "target"),
        hints=(
            "F1 balances precision (how many predicted positives are right) and recall (how many true positives "
            "are found); both count the positive class only.",
            "Count TP, FP and FN with boolean masks such as (pred == 1) & (target == 1); F1 = 2TP / (2TP + FP + "
            "FN); when TP + FP + FN is 0, return 0.0. Return a Python float.",
            "tp = int(((pred == 1) & (target == 1)).sum()); same for fp, fn; return 2 * tp / (2 * tp + fp + fn) if "
            "tp + fp + fn else 0.0",
        ),
    ),
    Exercise(
        id="08.4",
        function="probe_fold",
        cases=_fold_cases,
        reference=_reference_fold,
        args=("features", "labels", "train_idx", "test_idx"),
        dims=("test row", "class"),
        atol=1e-4,
        hints=(
            "Whatever is computed from data, the mean and the standard deviation included, comes from the training "
            "rows only; the test rows are transformed with those numbers.",
            "mu and sd from features[train_idx] (axis 0); replace a zero sd by 1; fit ft.LogisticRegression(C=1.0) "
            "on (train - mu) / sd; predict_proba on (test - mu) / sd.",
            "sd = np.where(sd > 0, sd, 1.0); model = ft.LogisticRegression(C=1.0).fit((train - mu) / sd, "
            "labels[train_idx]); return model.predict_proba((test - mu) / sd)",
        ),
    ),
    Question(
        id="08.Q1",
        function="f1_of_always_positive",
        answer=lambda: ft.f1_score(torch.ones(10, dtype=torch.long), torch.tensor([0] * 5 + [1] * 5)),
        hints=("Always positive on a balanced set: precision 0.5, recall 1.",),
        explanation="F1 = 2 × 0.5 × 1 / (0.5 + 1) = 0.667 while accuracy is 0.5: F1 of the positive class rewards "
        "a classifier that says 'positive' to everything. Report both, or the F1 of each class (macro F1).",
    ),
    Question(
        id="08.Q2",
        function="new_head_parameters",
        answer=_head_parameters,
        rel_tol=0.0,
        abs_tol=0.5,
        hints=("The new part is one linear layer from the pooled vector (768 features in bert-base) to 2 labels.",),
        explanation="768 × 2 weights + 2 biases = 1538 new parameters on top of 110M pretrained ones: fine-tuning "
        "starts almost entirely from what pretraining learned.",
    ),
]
