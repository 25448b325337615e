"""word2vec: the random draws have the right distributions, the batched update is the word2vec gradient step,
a corpus with an obvious structure is learned, and the evaluation counts exactly as gensim's does."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from minibert.embeddings import (
    KeyedVectors,
    Vocab,
    Word2Vec,
    Word2VecConfig,
    contextual_vectors,
    cosine_matrix,
    draw_negatives,
    dynamic_windows,
    evaluate_analogies,
    evaluate_word_pairs,
    find_word,
    scalar_mix,
    self_similarity,
    sense_separation,
    skipgram_pairs,
    subsample,
    tokenize,
    train_word2vec,
)
from minibert.embeddings.word2vec import _Buffers
from minibert.files import CheckpointError


def test_tokenize_lowercases_words_and_keeps_inner_apostrophes_and_hyphens():
    assert tokenize("Rock'n'roll, since 1950! A well-known café.") == [
        "rock'n'roll",
        "since",
        "1950",
        "a",
        "well-known",
        "café",
    ]
    assert tokenize("Софийски университет") == ["софийски", "университет"]


def test_vocab_counts_sorts_and_drops_rare_words():
    sentences = [["b", "a", "b", "c"], ["a", "b", "d"]]
    vocab = Vocab.build(sentences, min_count=2)
    assert vocab.words == ["b", "a"] and vocab.counts.tolist() == [3, 2]
    ids, sentence_ids = vocab.encode(sentences)
    assert ids.tolist() == [0, 1, 0, 1, 0] and sentence_ids.tolist() == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="lower min_count"):
        Vocab.build(sentences, min_count=10)
    with pytest.raises(TypeError, match="list of words"):
        Vocab.build(["a sentence as a string"], min_count=1)


def test_keep_probability_is_word2vecs_formula():
    vocab = Vocab([f"w{i}" for i in range(4)], [10_000, 1_000, 10, 1])
    f = vocab.counts.double() / vocab.counts.sum()
    t = 1e-3
    expected = ((f / t).sqrt() + 1) * t / f
    assert torch.allclose(vocab.keep_probabilities(t).double(), expected.clamp(max=1), atol=1e-6)
    assert vocab.keep_probabilities(t)[-1] == 1  # rarer than t: always kept
    assert torch.all(vocab.keep_probabilities(0) == 1)


def test_subsampling_keeps_each_word_at_its_rate():
    vocab = Vocab(["the", "of", "cat", "rare"], [50_000, 20_000, 300, 10])
    keep = vocab.keep_probabilities(1e-3)
    ids = torch.arange(4).repeat_interleave(25_000)
    kept = subsample(ids, keep, torch.Generator().manual_seed(0))
    for w in range(4):
        n, k, p = 25_000, int(kept[ids == w].sum()), float(keep[w])
        if p == 1:
            assert k == n
        else:  # a binomial count: within 4.5 standard deviations
            assert abs(k - n * p) < 4.5 * math.sqrt(n * p * (1 - p)), (w, k / n, p)
    assert keep[0] < 0.2 < keep[2]  # frequent words are the ones thinned out


def test_negatives_follow_the_unigram_to_the_075():
    counts = torch.tensor([5000, 2000, 800, 300, 100, 40, 10, 5])
    vocab = Vocab([f"w{i}" for i in range(8)], counts)
    noise = vocab.noise_distribution(0.75)
    expected = counts.double() ** 0.75 / (counts.double() ** 0.75).sum()
    assert torch.allclose(noise.double(), expected, atol=1e-7)
    draws = draw_negatives(noise, (200_000,), torch.Generator().manual_seed(0))
    observed = torch.bincount(draws, minlength=8).numpy()
    assert stats.chisquare(observed, expected.numpy() * len(draws)).pvalue > 1e-3
    # and not the plain unigram distribution, which over-samples frequent words
    unigram = counts.numpy() / counts.sum().item()
    assert stats.chisquare(observed, unigram * len(draws)).pvalue < 1e-12
    uniform = draw_negatives(vocab.noise_distribution(0.0), (80_000,), torch.Generator().manual_seed(1))
    assert stats.chisquare(torch.bincount(uniform, minlength=8).numpy()).pvalue > 1e-3


def test_dynamic_window_is_uniform_over_1_to_window():
    spans = dynamic_windows(60_000, 5, torch.Generator().manual_seed(0))
    assert spans.min() == 1 and spans.max() == 5
    assert stats.chisquare(torch.bincount(spans, minlength=6)[1:].numpy()).pvalue > 1e-3


def test_skipgram_pairs_match_the_plain_loops():
    g = torch.Generator().manual_seed(0)
    n, W = 40, 3
    ids = torch.randint(0, 9, (n,), generator=g)
    sentence_ids = torch.tensor([0] * 7 + [1] * 1 + [2] * 20 + [3] * 12)
    spans = dynamic_windows(n, W, g)
    centre, context = skipgram_pairs(ids, sentence_ids, spans, W)
    expected = [
        (i, j)
        for i in range(n)
        for j in range(max(0, i - int(spans[i])), min(n, i + int(spans[i]) + 1))
        if j != i and sentence_ids[j] == sentence_ids[i]
    ]
    assert list(zip(centre.tolist(), context.tolist())) == expected


# -- the batched update is the word2vec step ------------------------------------------------------------------


def _small_model(
    model: str, chunk: int, window: int = 2, negative: int = 3
) -> tuple[Word2Vec, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    words = [f"w{i}" for i in range(12)]
    sentences = [[words[i] for i in torch.randint(0, 12, (int(k),), generator=g)] for k in (9, 1, 14, 6, 11)]
    vocab = Vocab(words, [5] * 12)
    config = Word2VecConfig(dim=8, window=window, negative=negative, sample=0, model=model, chunk=chunk, min_count=1)
    m = Word2Vec(vocab, config)
    m.output = torch.randn(m.output.shape, generator=g) * 0.3  # non-zero output vectors: every gradient term counts
    m.output[-1] = 0
    ids, sentence_ids = vocab.encode(sentences)
    return m, ids, sentence_ids


def _explicit_loss(m: Word2Vec, ep, s: int, e: int, inp: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The negative-sampling loss of centres s..e-1 written pair by pair (skip-gram) or window by window (CBOW)."""
    W = m.config.window
    ids = ep.ids
    sentence = ep.sentence[W:-W]
    centre, context = skipgram_pairs(ids, sentence, ep.spans, W)
    total = torch.zeros(())
    for i in range(s, e):
        ctx = context[centre == i]
        if len(ctx) == 0:
            continue
        word, negs = ep.targets[i, 0], ep.targets[i, 1:]
        negs = negs[negs != word]  # word2vec.c skips a negative that is the centre word itself
        hs = inp[ids[ctx]] if m.config.model == "skipgram" else inp[ids[ctx]].mean(0, keepdim=True)
        for h in hs:
            total = total - torch.nn.functional.logsigmoid(out[word] @ h)
            total = total - torch.nn.functional.logsigmoid(-(out[negs] @ h)).sum()
    return total


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_batched_chunk_is_the_summed_sgd_step(model):
    m, ids, sentence_ids = _small_model(model, chunk=24)
    ep = m.plan_epoch(ids, sentence_ids)
    n = len(ep.ids)
    assert 24 < n < 48  # two chunks: a full one, then a short one (the buffer's leftovers must not leak)
    step = m.skipgram_chunk if model == "skipgram" else m.cbow_chunk
    buf = _Buffers(m, m.config.chunk)
    lr = 0.5
    for s, e in [(0, 24), (24, n)]:
        inp = m.input.clone().requires_grad_()
        out = m.output.clone().requires_grad_()
        loss = _explicit_loss(m, ep, s, e, inp, out)
        loss.backward()
        before_in, before_out = m.input.clone(), m.output.clone()
        reported, pairs = step(ep, s, e, lr, buf, want_loss=True)
        assert torch.allclose(reported * int(pairs), loss.detach(), atol=1e-4)  # the loss it reports, per pair
        assert torch.allclose(m.output - before_out, -lr * out.grad, atol=1e-5)
        if model == "skipgram":
            assert torch.allclose(m.input - before_in, -lr * inp.grad, atol=1e-5)
        else:
            assert _cbow_input_step_ok(m, ep, s, e, before_in, before_out, lr)
        assert m.input[-1].abs().max() == 0 and m.output[-1].abs().max() == 0  # the padding row stays zero


def _cbow_input_step_ok(m, ep, s, e, inp, out, lr) -> bool:
    """CBOW's input update, word2vec's way: every word of a window gets the window's whole error vector."""
    W = m.config.window
    centre, context = skipgram_pairs(ep.ids, ep.sentence[W:-W], ep.spans, W)
    expected = torch.zeros_like(inp)
    for i in range(s, e):
        ctx = context[centre == i]
        if len(ctx) == 0:
            continue
        h = inp[ep.ids[ctx]].mean(0)
        word, negs = ep.targets[i, 0], ep.targets[i, 1:]
        targets = torch.cat([word[None], negs[negs != word]])
        y = torch.zeros(len(targets))
        y[0] = 1
        g = (y - torch.sigmoid(out[targets] @ h)) * lr
        error = g @ out[targets]
        expected.index_add_(0, ep.ids[ctx], error.expand(len(ctx), -1))
    return torch.allclose(m.input - inp, expected, atol=1e-5)


# -- it learns --------------------------------------------------------------------------------------------------


def _topic_corpus(n_sentences: int = 600, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """Three topics of six words; every sentence draws its words from one topic only."""
    topics = [[f"{t}{i}" for i in range(6)] for t in ("animal", "colour", "number")]
    g = torch.Generator().manual_seed(seed)
    sentences = []
    for _ in range(n_sentences):
        topic = topics[int(torch.randint(0, 3, (1,), generator=g))]
        sentences.append([topic[int(i)] for i in torch.randint(0, 6, (8,), generator=g)])
    return topics, sentences


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_a_corpus_with_obvious_structure_is_learned(model):
    topics, sentences = _topic_corpus()
    kv, report = train_word2vec(
        sentences, dim=16, window=3, negative=4, min_count=1, sample=0, epochs=5, model=model, chunk=64
    )
    assert report.words == 5 * 600 * 8 and report.pairs > 0
    assert report.losses[-1][1] < report.losses[0][1]
    for topic in topics:
        for word in topic:
            neighbours = [w for w, _ in kv.most_similar(word, topn=5)]
            assert set(neighbours) == set(topic) - {word}, (word, neighbours)
    within = np.mean([kv.similarity(a, b) for t in topics for a in t for b in t if a != b])
    across = np.mean([kv.similarity(a, b) for a in topics[0] for b in topics[1]])
    assert within > across + 0.5


def test_same_seed_same_vectors_and_two_workers_learn_too():
    topics, sentences = _topic_corpus(300)
    settings = dict(dim=12, window=3, negative=3, min_count=1, epochs=3, chunk=32, sample=0)
    a, _ = train_word2vec(sentences, **settings)
    b, _ = train_word2vec(sentences, **settings)
    assert torch.equal(a.vectors, b.vectors)
    c, _ = train_word2vec(sentences, workers=2, **settings)
    assert all(c.most_similar(t[0], topn=1)[0][0] in t for t in topics)


def test_an_error_in_a_worker_thread_reaches_the_caller():
    _, sentences = _topic_corpus(100)
    m = Word2Vec.from_sentences(sentences, Word2VecConfig(dim=8, min_count=1, chunk=16, workers=2, sample=0))
    original = m.skipgram_chunk

    def failing(ep, s, e, *args, **kwargs):
        if (s // 16) % 2 == 1:  # the chunks of worker 1, which runs in its own thread
            raise RuntimeError("boom")
        return original(ep, s, e, *args, **kwargs)

    m.skipgram_chunk = failing
    with pytest.raises(RuntimeError, match="boom"):
        m.train(sentences)


def test_callback_sees_the_loss_as_training_goes():
    _, sentences = _topic_corpus(200)
    m = Word2Vec.from_sentences(sentences, Word2VecConfig(dim=8, min_count=1, chunk=32, epochs=2, sample=0))
    seen = []
    report = m.train(sentences, callback=lambda at, loss: seen.append((at, loss)), report_every=5)
    assert seen == report.losses and len(seen) >= 4
    assert [at for at, _ in seen] == sorted(at for at, _ in seen) and 0 <= seen[0][0] < 1 <= seen[-1][0] < 2


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="skipgram"):
        Word2VecConfig(model="glove")
    with pytest.raises(ValueError, match="window"):
        Word2VecConfig(window=0)
    with pytest.raises(ValueError, match="min_alpha"):
        Word2VecConfig(alpha=0.01, min_alpha=0.1)


def test_training_on_unrelated_text_says_so():
    m = Word2Vec(Vocab(["a", "b"], [5, 5]), Word2VecConfig(min_count=1))
    with pytest.raises(ValueError, match="none of these sentences"):
        m.train([["x", "y"]])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_same_step_on_the_gpu():
    cpu, ids, sentence_ids = _small_model("skipgram", chunk=16)
    gpu, _, _ = _small_model("skipgram", chunk=16)
    gpu.device = torch.device("cuda")
    gpu.input, gpu.output = cpu.input.cuda(), cpu.output.cuda()
    ep_cpu = cpu.plan_epoch(ids, sentence_ids)
    ep_gpu = gpu.plan_epoch(ids, sentence_ids)
    assert torch.equal(ep_cpu.targets, ep_gpu.targets.cpu())
    n = len(ep_cpu.ids)
    cpu.skipgram_chunk(ep_cpu, 0, n, 0.1, _Buffers(cpu, n))
    gpu.skipgram_chunk(ep_gpu, 0, n, 0.1, _Buffers(gpu, n))
    assert torch.allclose(cpu.input, gpu.input.cpu(), atol=1e-5)
    assert torch.allclose(cpu.output, gpu.output.cpu(), atol=1e-5)


# -- queries, files and evaluation ------------------------------------------------------------------------------


def _royal_vectors() -> KeyedVectors:
    g = torch.Generator().manual_seed(0)
    base = {w: torch.randn(20, generator=g) for w in ("person", "royal", "female", "x", "y", "z")}
    vectors = {
        "man": base["person"],
        "woman": base["person"] + base["female"],
        "king": base["person"] + base["royal"],
        "queen": base["person"] + base["royal"] + base["female"],
        "apple": base["x"],
        "pear": base["x"] + 0.1 * base["y"],
        "car": base["z"],
    }
    return KeyedVectors(list(vectors), torch.stack(list(vectors.values())), counts=[7, 6, 5, 4, 3, 2, 1])


def test_queries():
    kv = _royal_vectors()
    assert kv.analogy("man", "king", "woman")[0][0] == "queen"
    assert kv.most_similar("apple", topn=1)[0][0] == "pear"
    assert "apple" not in [w for w, _ in kv.most_similar("apple")]
    assert kv.similarity("apple", "apple") == pytest.approx(1.0)
    assert kv.most_similar(kv["pear"], topn=1)[0][0] == "pear"  # a vector query excludes nothing
    with pytest.raises(KeyError, match="try 'queen'"):
        kv["Queen"]


def test_save_and_load(tmp_path):
    kv = _royal_vectors()
    path = kv.save(tmp_path / "royal.safetensors")
    back = KeyedVectors.load(path)
    assert back.words == kv.words and torch.equal(back.vectors, kv.vectors) and torch.equal(back.counts, kv.counts)
    with pytest.raises(ValueError, match="safetensors"):
        kv.save(tmp_path / "royal.bin")
    (tmp_path / "broken.safetensors").write_bytes(b"not a weights file")
    with pytest.raises(CheckpointError):
        KeyedVectors.load(tmp_path / "broken.safetensors")


@pytest.fixture(scope="module")
def benchmark_vectors():
    """Vectors for most words of the three benchmarks, with some structure: rank correlations and analogies are
    far from zero, and some words are missing so out-of-vocabulary counting matters."""
    from minibert.embeddings import benchmark_path

    words: dict[str, None] = {}
    for name in ("wordsim353", "simlex999"):
        for line in open(benchmark_path(name), encoding="utf8"):
            if not line.startswith("#"):
                for w in line.split("\t")[:2]:
                    words[w.lower()] = None
    relation = {}
    for line in open(benchmark_path("analogies"), encoding="utf8"):
        parts = line.split()
        if len(parts) == 4:
            for w in parts:
                words[w.lower()] = None
            relation.setdefault(parts[1].lower(), parts[0].lower())
    g = torch.Generator().manual_seed(0)
    vocab = [w for w in words if torch.rand((), generator=g) > 0.15]  # about 15% missing
    index = {w: i for i, w in enumerate(vocab)}
    vectors = torch.randn(len(vocab), 50, generator=g)
    shift = torch.randn(50, generator=g) * 2
    for b, a in relation.items():  # half the second words of analogies sit at "first word + shift"
        if a in index and b in index and torch.rand((), generator=g) < 0.5:
            vectors[index[b]] = vectors[index[a]] + shift + 0.5 * torch.randn(50, generator=g)
    return KeyedVectors(vocab, vectors)


def _gensim(kv: KeyedVectors):
    from gensim.models import KeyedVectors as GensimKeyedVectors

    g = GensimKeyedVectors(kv.dim)
    g.add_vectors(kv.words, kv.vectors.numpy())
    return g


def _scored_pairs(kv: KeyedVectors, name: str) -> list[tuple[str, str, float]]:
    """The (word, word, human score) lines of a benchmark whose two words are both in kv."""
    from minibert.embeddings import benchmark_path

    rows = []
    for line in open(benchmark_path(name), encoding="utf8"):
        parts = line.strip().split("\t")
        if not line.startswith("#") and len(parts) == 3 and all(w.lower() in kv for w in parts[:2]):
            rows.append((parts[0].lower(), parts[1].lower(), float(parts[2])))
    return rows


# Cosines are float32 dot products: ours (torch) and gensim's (numpy) differ by about 1e-7 with the BLAS kernel and
# thread count. The ranking inputs are compared with room for that; the rank statistic is then allowed to move by
# what the near-tied cosines can swap, and by nothing more.
COSINE_TOL = 1e-6


@pytest.mark.parametrize("name", ["wordsim353", "simlex999"])
def test_word_pair_scores_equal_gensims(benchmark_vectors, name):
    from minibert.embeddings import benchmark_path

    kv, g = benchmark_vectors, _gensim(benchmark_vectors)
    ours = evaluate_word_pairs(kv, name)
    pearson, spearman, oov_ratio = g.evaluate_word_pairs(benchmark_path(name))
    rows = _scored_pairs(kv, name)
    assert ours.pairs == len(rows) and ours.oov_ratio == pytest.approx(oov_ratio) and ours.oov > 0
    cosines = np.array([kv.similarity(a, b) for a, b, _ in rows])
    assert np.abs(cosines - [g.similarity(a, b) for a, b, _ in rows]).max() <= COSINE_TOL  # the same inputs
    # Two cosines closer than 2 * COSINE_TOL may come in either order on another kernel (wordsim353 here has one
    # pair 3e-8 apart). Swapping two adjacent ranks changes sum(d^2) by at most 2n + 2, so Spearman's
    # 1 - 6 sum(d^2) / (n (n^2 - 1)) moves by at most 12 / (n (n - 1)) per swap: about 2e-4 for wordsim353's 252
    # pairs, far below what a wrong pair, rank or formula changes (Pearson instead of Spearman differs by 0.04).
    n, near_ties = len(rows), int((np.diff(np.sort(cosines)) < 2 * COSINE_TOL).sum())
    assert near_ties <= 0.05 * n  # otherwise the bound below would say little
    assert ours.spearman == pytest.approx(spearman[0], abs=near_ties * 12 / (n * (n - 1)) + 1e-12)
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-6)  # continuous in the cosines: no ties to break


def _near_tied_analogies(kv: KeyedVectors, gap: float = 1e-5) -> int:
    """Questions whose best two answers (3CosAdd, in float64) are closer than ``gap``: on another BLAS kernel the
    float32 scores of gensim or of minibert may rank them the other way round."""
    from minibert.embeddings import benchmark_path

    unit = kv.unit.double()
    index = {w.upper(): i for i, w in reversed(list(enumerate(kv.words)))}
    questions = []
    for line in open(benchmark_path("analogies"), encoding="utf8"):
        words = [w.upper() for w in line.split()]
        if not line.startswith(":") and len(words) == 4 and all(w in index for w in words):
            questions.append([index[w] for w in words])
    a, b, c, _ = torch.tensor(questions).T
    sims = (unit[b] + unit[c] - unit[a]) @ unit.T
    rows = torch.arange(len(a))
    for words in (a, b, c):
        sims[rows, words] = -math.inf
    top = sims.topk(2, dim=1).values
    return int((top[:, 0] - top[:, 1] < gap * (unit[b] + unit[c] - unit[a]).norm(dim=1)).sum())


def test_analogy_accuracy_equals_gensims(benchmark_vectors):
    from minibert.embeddings import benchmark_path

    ours = evaluate_analogies(benchmark_vectors)
    score, sections = _gensim(benchmark_vectors).evaluate_word_analogies(benchmark_path("analogies"))
    total = sections[-1]
    assert ours.total == len(total["correct"]) + len(total["incorrect"]) and 0.05 < ours.accuracy < 0.95
    assert ours.oov > 0
    # an answer only changes where the two best candidates are within float32 rounding (6 of 10451 questions here
    # are closer than 1e-5); a wrong scoring or a question word not excluded changes hundreds
    near_ties = _near_tied_analogies(benchmark_vectors)
    assert near_ties <= 0.002 * ours.total
    gensim_sections = {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in sections}
    assert all(gensim_sections[k][1] == v[1] for k, v in ours.sections.items())  # the same questions answered
    assert sum(abs(gensim_sections[k][0] - v[0]) for k, v in ours.sections.items()) <= near_ties
    assert abs(ours.correct - len(total["correct"])) <= near_ties


def test_from_gensim_keeps_words_and_vectors(benchmark_vectors):
    back = KeyedVectors.from_gensim(_gensim(benchmark_vectors))
    assert back.words == benchmark_vectors.words and torch.equal(back.vectors, benchmark_vectors.vectors)


# -- static against contextual ----------------------------------------------------------------------------------


def test_cosine_matrix_and_sense_separation():
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    assert torch.allclose(cosine_matrix(x), torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))
    assert cosine_matrix(x, x[:1]).shape == (3, 1)
    assert sense_separation(x, ["a", "a", "b"]) == pytest.approx(1.0)
    assert sense_separation(x[[0, 1, 0, 1]], ["a", "b", "a", "b"]) == pytest.approx(0.0)  # one vector: no senses
    with pytest.raises(ValueError, match="two senses"):
        sense_separation(x, ["a", "a", "a"])
    assert self_similarity(x[[0, 1]]) == pytest.approx(1.0)  # one direction: a static vector
    assert self_similarity(x) == pytest.approx(1 / 3)  # pairs: 1, 0, 0


def test_find_word_takes_whole_words_only():
    tokens = ["[CLS]", "the", "bank", "##ing", "bank", "em", "##bed", "##ding", "##s", "[SEP]"]
    assert find_word(tokens, ["bank"]) == [4]  # not the "bank" of "banking"
    assert find_word(tokens, ["em", "##bed", "##ding", "##s"]) == [5, 6, 7, 8]
    assert find_word(tokens, ["river"]) == []


def test_scalar_mix_is_a_softmax_weighted_sum():
    h = torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(0))
    w = torch.tensor([0.0, 1.0, -1.0, 2.0])
    expected = 0.5 * sum(torch.softmax(w, 0)[i] * h[i] for i in range(4))
    assert torch.allclose(scalar_mix(h, w, 0.5), expected, atol=1e-6)
    assert torch.allclose(scalar_mix(h, torch.zeros(4)), h.mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="one weight per layer"):
        scalar_mix(h, torch.zeros(3))


def test_contextual_vectors_of_a_word():
    from minibert.config import EncoderConfig
    from minibert.encoder import Encoder
    from minibert.hf import minilm_path
    from minibert.text import BertTokenizer

    torch.manual_seed(0)
    config = EncoderConfig(hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_position_embeddings=64)
    encoder = Encoder(config).eval()
    tokenizer = BertTokenizer.from_pretrained(minilm_path())
    sentences = ["the bank of the river", "the bank lent money", "we met at the embeddings workshop"]
    v = contextual_vectors(encoder, tokenizer, sentences[:2], "bank")
    assert v.shape == (3, 2, 16)
    assert torch.allclose(v[0, 0], v[0, 1])  # the embedding layer has no context: same word, same position
    assert not torch.allclose(v[-1, 0], v[-1, 1], atol=1e-3)  # the encoder's output has
    pieces = contextual_vectors(encoder, tokenizer, sentences[2:], "embeddings")  # 4 WordPieces, averaged
    assert pieces.shape == (3, 1, 16)
    with pytest.raises(ValueError, match="not a word of sentence 2"):
        contextual_vectors(encoder, tokenizer, sentences, "bank")
