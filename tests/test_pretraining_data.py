"""Pretraining data: sentence splitting, NSP instances, truncation, MLM masking, static and dynamic streams."""

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert import hf, pretrain, text
from minibert.pretrain import (
    IGNORE_INDEX,
    NSP_IS_NEXT,
    NSP_RANDOM,
    Instance,
    Masker,
    PretrainingCollator,
    PretrainingStream,
    build_instances,
    mask_instances,
    truncate_seq_pair,
)
from minibert.text import BertTokenizer, split_sentences

CLS, SEP = 101, 102


@pytest.fixture(scope="module")
def tokenizer():
    return BertTokenizer.from_pretrained(hf.minilm_path())


@pytest.fixture(scope="module")
def docs(tokenizer):
    return pretrain.pretraining_documents(tokenizer)[0][:40]


@pytest.fixture(scope="module")
def real_instances(tokenizer, docs):
    return build_instances(docs, tokenizer.cls_token_id, tokenizer.sep_token_id, seed=1)


def synthetic_documents(n_docs=30, sentences=12, length=5):
    """Document d holds ids 1000 d + 1, 1000 d + 2, ... in order: an id tells where it came from."""
    return [
        [[1000 * d + s * length + k + 1 for k in range(length)] for s in range(sentences)] for d in range(1, n_docs + 1)
    ]


def segments(inst: Instance) -> tuple[list[int], list[int]]:
    ids = list(inst.input_ids)
    first_sep = ids.index(SEP)
    return ids[1:first_sep], ids[first_sep + 1 : -1]


# ---------------------------------------------------------------------------------------------------------------
# Sentences


def test_split_sentences_keeps_abbreviations_initials_and_acronyms_together():
    text = (
        "Dr. Smith moved to Washington, D.C. in 1990. He met J. R. R. Tolkien there! Was it the U.S. Army? "
        "Yes, e.g. the infantry. 1991 was calmer."
    )
    assert split_sentences(text) == [
        "Dr. Smith moved to Washington, D.C. in 1990.",
        "He met J. R. R. Tolkien there!",
        "Was it the U.S. Army?",
        "Yes, e.g. the infantry.",
        "1991 was calmer.",
    ]


def test_split_sentences_on_the_corpus_gives_sentence_sized_pieces():
    paragraphs = text.wikipedia_lines("en")[:300]
    sentences = [s for p in paragraphs for s in split_sentences(p)]
    assert "".join(sentences).replace(" ", "") == "".join(paragraphs).replace(" ", "")  # nothing lost
    lengths = sorted(len(s.split()) for s in sentences)
    assert 15 <= lengths[len(lengths) // 2] <= 35  # a median English sentence, not paragraphs or fragments


# ---------------------------------------------------------------------------------------------------------------
# NSP instances and truncation


def test_instance_layout_cls_a_sep_b_sep(real_instances):
    for inst in real_instances[:200]:
        ids, types = inst.input_ids, inst.token_type_ids
        assert ids[0] == CLS and ids[-1] == SEP and ids.count(SEP) == 2 and len(ids) <= 128
        a, b = segments(inst)
        assert a and b
        assert list(types) == [0] * (len(a) + 2) + [1] * (len(b) + 1)


def random_share(instances) -> float:
    return sum(i.next_sentence_label == NSP_RANDOM for i in instances) / len(instances)


@pytest.mark.parametrize("length", [32, 64, 128, 512])
def test_nsp_labels_are_half_is_next_at_every_length(tokenizer, length):
    """Google's rule gives a chunk of one sentence a random B: at 32 tokens most chunks are one sentence and about
    three pairs in four are random-next. The balanced rule draws the label first."""
    docs = pretrain.pretraining_documents(tokenizer)[0]  # every training article
    dupes = {32: 1, 64: 1, 128: 2, 512: 6}[length]  # enough pairs that 3 points are several standard deviations
    options = dict(max_seq_length=length, dupe_factor=dupes, seed=0)
    balanced = build_instances(docs, CLS, SEP, **options)
    assert len(balanced) > 2500
    assert 0.47 <= random_share(balanced) <= 0.53, random_share(balanced)
    assert all(len(i) <= length for i in balanced)
    if length == 32:
        assert random_share(build_instances(docs, CLS, SEP, pairs="google", **options)) > 0.7


def test_is_next_pairs_of_long_sentences_take_b_from_the_next_sentences():
    """Sentences longer than the sequence: every chunk is one sentence, so an is-next B must come from after it."""
    docs = synthetic_documents(n_docs=30, sentences=12, length=40)
    instances = build_instances(docs, CLS, SEP, max_seq_length=32, short_seq_prob=0.0, seed=0)
    assert 0.45 <= random_share(instances) <= 0.55
    for inst in instances:
        a, b = segments(inst)
        assert len(a) + len(b) == 29 and a == sorted(a) and b == sorted(b)
        if inst.next_sentence_label == NSP_IS_NEXT:
            assert a[0] // 1000 == b[0] // 1000 and max(a) < min(b)
    with pytest.raises(ValueError, match="pairs"):
        build_instances(docs, CLS, SEP, pairs="random")


def test_true_next_follows_a_and_random_next_comes_from_another_document():
    docs = synthetic_documents()
    instances = build_instances(docs, CLS, SEP, max_seq_length=40, short_seq_prob=0.0, seed=3)
    labels = [i.next_sentence_label for i in instances]
    assert labels.count(NSP_IS_NEXT) > 25 and labels.count(NSP_RANDOM) > 25
    for inst in instances:
        a, b = segments(inst)
        doc_a = {t // 1000 for t in a}
        assert len(doc_a) == 1 and a == sorted(a)  # A: one stretch of one document, in order
        if inst.next_sentence_label == NSP_IS_NEXT:
            assert {t // 1000 for t in b} == doc_a and max(a) < min(b)  # B continues A's document after A
        else:
            assert not ({t // 1000 for t in b} & doc_a)  # B comes from another document


def test_unused_segments_are_put_back():
    """After a random B the sentences left in the chunk start the next instance, so text is not wasted."""
    docs = synthetic_documents(n_docs=40, sentences=30, length=5)
    instances = build_instances(docs, CLS, SEP, max_seq_length=64, short_seq_prob=0.0, seed=0)
    used = set()
    for inst in instances:
        a, b = segments(inst)
        used |= set(a)
        if inst.next_sentence_label == NSP_IS_NEXT:
            used |= set(b)
    total = sum(len(s) for d in docs for s in d)
    assert len(used) / total > 0.9  # without putting back about a quarter of the text is dropped


def test_short_seq_prob_makes_some_sequences_shorter(real_instances, docs):
    full = build_instances(docs, CLS, SEP, short_seq_prob=0.0, seed=1)
    assert sum(len(i) < 100 for i in full) / len(full) < 0.03  # only document ends
    assert 0.05 < sum(len(i) < 100 for i in real_instances) / len(real_instances) < 0.2


def test_truncate_seq_pair_trims_the_longer_segment_from_both_ends():
    rng = random.Random(0)
    fronts = backs = 0
    for _ in range(200):
        a, b = list(range(10)), list(range(100, 103))
        truncate_seq_pair(a, b, 8, rng)
        assert len(a) == 5 and b == [100, 101, 102]  # only the longer one loses tokens
        assert a == list(range(a[0], a[0] + 5))  # what is left is contiguous
        fronts += a[0] > 0
        backs += a[-1] < 9
    assert fronts > 50 and backs > 50  # tokens go from the front and from the back


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 60), st.integers(0, 60), st.integers(2, 50), st.integers(0, 10**6))
def test_truncate_seq_pair_fits_and_is_balanced(n_a, n_b, budget, seed):
    a, b = list(range(n_a)), list(range(n_b))
    truncate_seq_pair(a, b, budget, random.Random(seed))
    assert len(a) + len(b) <= max(budget, 0) or (len(a) + len(b) == n_a + n_b <= budget)
    if n_a + n_b > budget:
        assert len(a) + len(b) == budget
        assert abs(len(a) - len(b)) <= 1 or min(len(a), len(b)) == min(n_a, n_b)


def test_single_segment_instances_without_nsp(docs):
    instances = build_instances(docs[:10], CLS, SEP, max_seq_length=128, nsp=False, seed=0)
    assert all(i.input_ids[0] == CLS and i.input_ids[-1] == SEP and i.input_ids.count(SEP) == 1 for i in instances)
    assert all(set(i.token_type_ids) == {0} and len(i) <= 128 for i in instances)
    assert sum(len(i) for i in instances) >= 0.99 * sum(len(s) for d in docs[:10] for s in d)  # nothing dropped


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="two documents"):
        build_instances(synthetic_documents(n_docs=1), CLS, SEP)
    with pytest.raises(ValueError, match="max_seq_length"):
        build_instances(synthetic_documents(), CLS, SEP, max_seq_length=3)
    with pytest.raises(ValueError, match="mask_prob"):
        Masker(103, (0, 101, 102, 103), 30522, mask_prob=0.0)
    with pytest.raises(ValueError, match="continuation"):
        Masker(103, (0, 101, 102, 103), 30522, whole_word=True)


# ---------------------------------------------------------------------------------------------------------------
# Masking


@pytest.fixture(scope="module")
def masked_batch(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer, max_predictions=20)
    batch = PretrainingCollator(tokenizer.pad_token_id, masker)(real_instances, torch.Generator().manual_seed(0))
    original = PretrainingCollator(tokenizer.pad_token_id)(mask_instances(real_instances, masker), None)
    return masker, batch, original


def test_masking_selects_15_percent_of_the_tokens(tokenizer, masked_batch, real_instances):
    masker, batch, _ = masked_batch
    special = torch.tensor([tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id])
    content = ~torch.isin(batch["labels"].where(batch["labels"] != IGNORE_INDEX, batch["input_ids"]), special)
    content &= batch["attention_mask"].bool()
    selected = batch["labels"] != IGNORE_INDEX
    share = selected.sum() / content.sum()
    assert len(real_instances) > 1000 and 0.145 <= share <= 0.155, share
    per_seq = selected.sum(1)
    assert per_seq.max() <= 20 and per_seq.min() >= 1  # capped, never empty


def test_80_10_10_rule(tokenizer, masked_batch):
    _, batch, _ = masked_batch
    selected = batch["labels"] != IGNORE_INDEX
    now, was = batch["input_ids"][selected], batch["labels"][selected]
    n = selected.sum().item()
    to_mask = (now == tokenizer.mask_token_id).sum().item() / n
    unchanged = (now == was).sum().item() / n
    replaced = 1 - to_mask - unchanged
    assert n > 15_000
    assert abs(to_mask - 0.8) < 0.015 and abs(unchanged - 0.1) < 0.01 and abs(replaced - 0.1) < 0.01
    randoms = now[(now != was) & (now != tokenizer.mask_token_id)]
    assert not any(tokenizer.convert_ids_to_tokens(int(t)).startswith("[") for t in randoms.unique())


def test_special_tokens_and_padding_are_never_masked(tokenizer, masked_batch):
    _, batch, _ = masked_batch
    labels, ids = batch["labels"], batch["input_ids"]
    assert torch.all(labels[batch["attention_mask"] == 0] == IGNORE_INDEX)
    assert torch.all(ids[batch["attention_mask"] == 0] == tokenizer.pad_token_id)
    specials = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert not torch.isin(labels, torch.tensor(specials)).any()
    assert torch.all(ids[:, 0] == tokenizer.cls_token_id)
    assert torch.all((ids == tokenizer.sep_token_id).sum(1) == 2)  # both [SEP] survive


def test_static_masking_matches_the_same_rule(masked_batch):
    _, dynamic, static = masked_batch
    for b in (dynamic, static):
        share = (b["labels"] != IGNORE_INDEX).sum() / b["attention_mask"].sum()
        assert 0.12 < share < 0.15


def test_whole_word_masking_takes_every_piece_of_a_word(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer, whole_word=True, max_predictions=20)
    batch = PretrainingCollator(tokenizer.pad_token_id, masker)(real_instances[:300], torch.Generator().manual_seed(1))
    labels = batch["labels"]
    original = labels.where(labels != IGNORE_INDEX, batch["input_ids"])
    content = batch["attention_mask"].bool() & ~torch.isin(original, torch.tensor(masker.special_ids))
    cont = torch.tensor(masker.continuation)[original] & content
    selected = labels != IGNORE_INDEX
    prev_selected = torch.nn.functional.pad(selected[:, :-1], (1, 0))
    inside_word = cont & torch.nn.functional.pad(content[:, :-1], (1, 0))
    assert inside_word.sum() > 100
    assert torch.equal(selected[inside_word], prev_selected[inside_word])  # a piece goes with the piece before it
    share = selected.sum() / batch["attention_mask"].sum()
    assert 0.12 < share < 0.155 and selected.sum(1).max() <= 20


def test_masking_is_seeded_and_device_independent(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer)
    collate = PretrainingCollator(tokenizer.pad_token_id, masker)
    a = collate(real_instances[:64], torch.Generator().manual_seed(5))
    b = collate(real_instances[:64], torch.Generator().manual_seed(5))
    c = collate(real_instances[:64], torch.Generator().manual_seed(6))
    assert torch.equal(a["input_ids"], b["input_ids"]) and not torch.equal(a["input_ids"], c["input_ids"])


def test_out_of_vocabulary_ids_and_unmasked_batches_are_refused(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer)
    with pytest.raises(ValueError, match="outside"):
        masker(torch.tensor([[101, 40000, 102]]), torch.Generator())
    with pytest.raises(ValueError, match="not masked"):
        PretrainingCollator(0)(real_instances[:4])
    with pytest.raises(ValueError, match="Generator"):
        PretrainingCollator(0, masker)(real_instances[:4])


# ---------------------------------------------------------------------------------------------------------------
# Streams: static and dynamic, deterministic and resumable


def test_dynamic_masks_change_between_epochs_static_ones_do_not(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer)
    pool = real_instances[:8]
    dynamic = PretrainingStream(pool, 8, PretrainingCollator(0, masker), seed=0)
    static = PretrainingStream(mask_instances(pool, masker), 8, PretrainingCollator(0), seed=0)

    def by_first_tokens(batch):  # epochs shuffle differently: key each row by its unmasked ids
        rows = {}
        for ids, labels in zip(batch["input_ids"], batch["labels"]):
            key = tuple(labels.where(labels != IGNORE_INDEX, ids).tolist())
            rows[key] = ids
        return rows

    for stream, same in ((dynamic, False), (static, True)):
        first, second = by_first_tokens(next(stream)), by_first_tokens(next(stream))
        assert stream.epoch == 1 and first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first) == same


def test_stream_resumes_exactly_from_its_state(tokenizer, real_instances):
    masker = Masker.from_tokenizer(tokenizer)
    make = lambda: PretrainingStream(real_instances[:100], 16, PretrainingCollator(0, masker), seed=7)
    a = make()
    run = [next(a)["input_ids"] for _ in range(9)]  # crosses an epoch (6 batches per epoch)
    b = make()
    for _ in range(4):
        next(b)
    state = b.state_dict()
    c = make()
    c.load_state_dict(state)
    assert all(torch.equal(next(c)["input_ids"], x) for x in run[4:])
    with pytest.raises(ValueError, match="seed"):
        PretrainingStream(real_instances[:100], 16, PretrainingCollator(0, masker), seed=8).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot fill"):
        PretrainingStream(real_instances[:3], 16, PretrainingCollator(0, masker))


def test_make_pretraining_data_builds_train_and_heldout(tokenizer):
    d = pretrain.make_pretraining_data(
        tokenizer, batch_size=8, max_documents=20, max_eval_batches=2, eval_batch_size=16
    )
    batch = next(d.train)
    assert batch["input_ids"].shape[0] == 8 and batch["input_ids"].shape[1] <= 128
    assert len(d.eval) == 2 and d.eval[0]["input_ids"].shape[0] == 16
    train_titles = {a.title for a in pretrain.split_articles(text.wikipedia("en"))[0]}
    held_titles = {a.title for a in pretrain.split_articles(text.wikipedia("en"))[1]}
    assert held_titles and not (train_titles & held_titles)
