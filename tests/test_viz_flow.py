"""Rollout and flow against hand computations; gradient attributions against finite differences and completeness."""

import pytest
import torch
from viz_helpers import WORDS, sharp, word_tokenizer

from minibert import viz
from minibert.config import EncoderConfig
from minibert.encoder import Encoder, EncoderForPreTraining
from minibert.text import BertTokenizer

# Two layers of one head over two tokens, chosen so that rollout and flow can be worked out on paper.
A1 = torch.tensor([[1.0, 0.0], [0.5, 0.5]])  # layer 1: token 1 looks at both
A2 = torch.tensor([[0.5, 0.5], [0.0, 1.0]])  # layer 2: token 0 looks at both
# with the residual, Â = 0.5 A + 0.5 I:  Â1 = [[1, 0], [.25, .75]],  Â2 = [[.75, .25], [0, 1]]
ROLLOUT = torch.tensor([[0.8125, 0.1875], [0.25, 0.75]])  # Â2 @ Â1
# flow from input j to output i: the only paths are j -> k -> i, one per middle token k, sharing no edge,
# so the maximum flow is sum_k min(Â1[k, j], Â2[i, k]); e.g. (i=0, j=0): min(1, .75) + min(.25, .25) = 1
FLOW = torch.tensor([[1.0, 0.25], [0.25, 0.75]])


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    return word_tokenizer(tmp_path_factory.mktemp("vocab"))


def tiny_config(**kw) -> EncoderConfig:
    base = dict(vocab_size=5 + len(WORDS), hidden_size=24, num_layers=2, num_heads=4, intermediate_size=32,
                max_position_embeddings=64, hidden_dropout=0.0, attention_dropout=0.0)  # fmt: skip
    return EncoderConfig(**{**base, **kw})


def test_rollout_and_flow_equal_the_hand_computation():
    attentions = [A1[None, None], A2[None, None]]  # (1, heads=1, 2, 2) per layer
    torch.testing.assert_close(viz.attention_rollout(attentions), ROLLOUT)
    torch.testing.assert_close(viz.attention_flow(attentions), FLOW, atol=1e-6, rtol=0)
    torch.testing.assert_close(viz.attention_flow(attentions, outputs=[1]), FLOW[1:], atol=1e-6, rtol=0)
    # no residual: the plain product, and heads are averaged first
    torch.testing.assert_close(viz.attention_rollout(attentions, residual=0.0), A2 @ A1)
    two_heads = [torch.stack([A1, torch.eye(2)])[None], torch.stack([A2, A2])[None]]
    mixed = 0.5 * (0.5 * (A1 + torch.eye(2))) + 0.5 * torch.eye(2)
    torch.testing.assert_close(viz.layer_graph(two_heads)[0].float(), mixed)


def test_rollout_and_flow_of_a_small_model(tokenizer):
    torch.manual_seed(0)
    model = sharp(Encoder(tiny_config()))
    batch = viz.encode_for_view(tokenizer, "the cat sat on the mat .")
    attentions = viz.model_attentions(model, batch)  # 2 layers of (1, 4, 9, 9)
    a1, a2 = (0.5 * a[0].double().mean(0) + 0.5 * torch.eye(9, dtype=torch.float64) for a in attentions)
    torch.testing.assert_close(viz.attention_rollout(attentions), (a2 @ a1).float())
    by_hand = torch.stack([torch.stack([torch.minimum(a1[:, j], a2[i]).sum() for j in range(9)]) for i in range(9)])
    torch.testing.assert_close(viz.attention_flow(attentions), by_hand.float(), atol=1e-6, rtol=0)
    assert not torch.allclose(by_hand, a2 @ a1, atol=1e-3), "flow and rollout differ on this model"


def test_flow_equals_networkx_on_a_deeper_graph():
    nx = pytest.importorskip("networkx")
    g = torch.Generator().manual_seed(1)
    attentions = [torch.randn(1, 3, 6, 6, generator=g).mul(2).softmax(-1) for _ in range(4)]
    graph = viz.layer_graph(attentions).numpy()
    G = nx.DiGraph()
    for l in range(4):
        for i in range(6):
            for j in range(6):
                G.add_edge((l, j), (l + 1, i), capacity=float(graph[l, i, j]))
    ref = torch.tensor([[nx.maximum_flow_value(G, (0, j), (4, i)) for j in range(6)] for i in range(6)])
    torch.testing.assert_close(viz.attention_flow(attentions), ref.float(), atol=1e-6, rtol=0)


def test_rank_correlation():
    assert viz.rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert viz.rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    # ties share their average rank: ranks [1.5, 1.5, 3] and [1, 2, 3]
    assert viz.rank_correlation([1, 1, 2], [1, 2, 3]) == pytest.approx(0.8660254, abs=1e-6)
    assert viz.rank_correlation([1, 1, 1], [1, 2, 3]) != viz.rank_correlation([1, 1, 1], [1, 2, 3])  # nan
    with pytest.raises(ValueError, match="same length"):
        viz.rank_correlation([1, 2], [1, 2, 3])


# ---------------------------------------------------------------------------------------------------------------
# Gradient attributions


@pytest.fixture(scope="module")
def mlm(tokenizer):
    torch.manual_seed(0)
    return sharp(EncoderForPreTraining(tiny_config())).double()


def scalar_with_embeddings(model, inputs, score, embeds):
    from minibert.viz.attribution import _embeddings_replaced

    with torch.no_grad(), _embeddings_replaced(model, embeds):
        return float(score(model, inputs))


def test_input_x_gradient_equals_the_directional_derivative(mlm, tokenizer):
    """x_t . df/dx_t is the derivative of f when token t's embedding is scaled by (1 + e): checked by central
    differences in float64, without autograd."""
    batch = viz.encode_for_view(tokenizer, "the cat [MASK] on the mat .")
    score = viz.masked_word(3, tokenizer.convert_tokens_to_ids("sat"))
    result = viz.input_x_gradient(mlm, batch, score)
    x = mlm.encoder.embeddings.tok_embeddings(batch["input_ids"]).detach()
    eps = 1e-5
    for t in range(x.size(1)):
        up, down = x.clone(), x.clone()
        up[0, t] *= 1 + eps
        down[0, t] *= 1 - eps
        slope = scalar_with_embeddings(mlm, batch, score, up) - scalar_with_embeddings(mlm, batch, score, down)
        assert result.scores[t].item() == pytest.approx(slope / (2 * eps), rel=1e-4, abs=1e-7)
    assert result.value == pytest.approx(scalar_with_embeddings(mlm, batch, score, x))


def test_integrated_gradients_add_up_to_the_change_of_the_prediction(mlm, tokenizer):
    batch = viz.encode_for_view(tokenizer, "the cat [MASK] on the mat .")
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
    keep = torch.tensor([t in ("[CLS]", "[SEP]", "[MASK]") for t in tokens])
    score = viz.masked_word(3, tokenizer.convert_tokens_to_ids("sat"))
    coarse = viz.integrated_gradients(mlm, batch, score, steps=4, keep=keep)
    fine = viz.integrated_gradients(mlm, batch, score, steps=128, keep=keep)
    change = fine.value - fine.baseline_value
    assert abs(change) > 0.05, "the baseline must change the prediction for the check to mean anything"
    assert abs(fine.completeness_gap) < 1e-3 * abs(change)
    assert abs(fine.completeness_gap) < abs(coarse.completeness_gap)  # the midpoint rule converges
    assert (fine.scores[keep] == 0).all()  # tokens kept in the baseline score nothing
    # the baseline really has zero embeddings elsewhere: f(x') recomputed by hand
    x = mlm.encoder.embeddings.tok_embeddings(batch["input_ids"]).detach()
    assert fine.baseline_value == pytest.approx(scalar_with_embeddings(mlm, batch, score, x * keep[None, :, None]))


def test_similarity_attribution_of_a_sentence_encoder(tokenizer):
    torch.manual_seed(0)
    encoder = sharp(Encoder(tiny_config())).double()
    e = viz.explain_similarity(encoder, tokenizer, "the cat sat on the mat .", "the dog ran .", steps=64)
    ig = e.attributions["integrated gradients"]
    assert abs(ig.completeness_gap) < 1e-2 * abs(ig.value - ig.baseline_value)
    assert set(e.scores) == set(viz.METHODS)
    assert e.compared.tolist() == [False] + [True] * 7 + [False]


def test_explanation_compares_five_methods_on_the_words(mlm, tokenizer):
    e = viz.explain_masked_word(mlm.float(), tokenizer, "the cat [MASK] on the mat .", steps=16)
    mlm.double()
    assert list(e.scores) == list(viz.METHODS)
    assert e.tokens[3] == "[MASK]" and e.compared.tolist() == [False, True, True, False, True, True, True, True, False]
    corr = e.correlations()
    assert len(corr) == 10 and all(-1 <= r <= 1 for r in corr.values())
    assert all(len(e.top(m)) == 3 for m in e.scores)
    assert "mat" in e.table() and "[MASK]" not in e.table()
    mean = viz.mean_correlations([e, e])
    assert mean == pytest.approx(corr)
    with pytest.raises(ValueError, match="exactly one"):
        viz.explain_masked_word(mlm, tokenizer, "the cat sat .")
    with pytest.raises(TypeError, match="no masked-language-model head"):
        viz.explain_masked_word(mlm.encoder, tokenizer, "the [MASK] sat .")
