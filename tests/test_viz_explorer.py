"""The explorer driven from Python, the architecture drawn in the views, exports, and head kinds."""

import html
import json
import re

import pytest
import torch
from viz_helpers import WORDS, sharp, word_tokenizer

from minibert import EncoderForPreTraining, preset, viz
from minibert.config import EncoderConfig
from minibert.text import BertTokenizer

pytest.importorskip("ipywidgets")

V = 5 + len(WORDS)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    return word_tokenizer(tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="module")
def models(tokenizer):
    torch.manual_seed(0)
    bert = EncoderConfig(vocab_size=V, hidden_size=24, num_layers=3, num_heads=4, intermediate_size=32,
                         max_position_embeddings=64)  # fmt: skip
    modern = preset("modernbert-tiny", vocab_size=V, pad_token_id=0, local_attention=4)  # a token sees 2 each side
    euro = preset("eurobert-tiny", vocab_size=V, pad_token_id=0)  # 6 query heads share 2 key/value heads
    return {
        "bert": (sharp(EncoderForPreTraining(bert)), tokenizer),
        "modernbert": (sharp(EncoderForPreTraining(modern), 1), tokenizer),
        "eurobert": (sharp(EncoderForPreTraining(euro), 2), tokenizer),
    }


def params_of(iframe_or_page: str) -> dict:
    page = html.unescape(iframe_or_page)
    m = re.search(r"const params = (\{.*\});", page)
    assert m, "no params in the page"
    return json.loads(m[1])


# ---------------------------------------------------------------------------------------------------------------
# The explorer, driven from Python as the browser drives it: set a widget's value, the views follow


def test_changing_the_text_redraws_every_view(models):
    ex = viz.explore(models, text="the cat sat on the mat .")
    head, model_view, picture = ex.head_view.value, ex.model_view.value, ex.heatmap.value
    assert params_of(head)["attention"][0]["left_text"][:3] == ["[CLS]", "the", "cat"]
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    ex.text.value = "it was tired ."
    assert params_of(ex.head_view.value)["attention"][0]["left_text"] == ["[CLS]", "it", "was", "tired", ".", "[SEP]"]
    assert ex.model_view.value != model_view and ex.heatmap.value != picture
    assert ex.data.tokens == ["[CLS]", "it", "was", "tired", ".", "[SEP]"]
    assert "6 tokens" in ex.status.value
    ex.pair.value = "the dog ran ."
    assert ex.data.sentence_b_start == 6 and params_of(ex.head_view.value)["attention"][1]["name"].startswith("Sen")


def test_layer_head_and_heatmap_controls(models):
    ex = viz.explore(models, text="the cat sat on the mat .")
    assert [v for _, v in ex.layer.options] == [0, 1, 2]
    ex.layer.value = 2
    assert params_of(ex.head_view.value)["layer"] == 2
    ex.head.value = 3
    assert params_of(ex.head_view.value)["heads"] == [3]
    values, title = ex.heatmap_values()
    torch.testing.assert_close(values, ex.attentions[2][0, 3])
    before = ex.heatmap.value
    ex.kind.value = "rollout"
    torch.testing.assert_close(ex.heatmap_values()[0], viz.attention_rollout(ex.attentions))
    assert ex.heatmap.value != before
    ex.kind.value = "flow"
    ex.layer.value = 0
    torch.testing.assert_close(ex.heatmap_values()[0], viz.attention_flow(ex.attentions[:1]))


def test_switching_models_keeps_the_text_and_shows_their_architecture(models):
    ex = viz.explore(models, text="the cat sat on the mat . the dog ran .", notes={"modernbert": "untrained"})
    ex.model.value = "modernbert"
    assert [label for label, _ in ex.layer.options] == ["layer 0", "layer 1 · local ±2", "layer 2 · local ±2"]
    assert "untrained" in ex.status.value and "<polygon" in html.unescape(ex.head_view.value)  # the window drawn
    ex.model.value = "eurobert"
    assert [label for label, _ in ex.head.options][1:4] == ["head 0 · kv 0", "head 1 · kv 0", "head 2 · kv 0"]
    assert "K/V 1" in ex.head_view.value and "K/V 1" in ex.model_view.value
    assert ex.data.tokens[1:3] == ["the", "cat"]


def test_explorer_shows_errors_instead_of_raising(models, tokenizer):
    ex = viz.explore(models, text="the cat sat .")
    good = ex.head_view.value
    ex.models["bert"] = (ex.models["bert"][0], None)  # a broken entry: the tokenizer cannot be called
    ex.text.value = "the dog ran ."
    assert "color: #b00" in ex.status.value and ex.head_view.value == good
    with pytest.raises(ValueError, match="no tokenizer"):
        viz.explore({"x": models["bert"][0]})


def test_explorer_saves_and_displays(models, tmp_path):
    ex = viz.explore(models["bert"][0], models["bert"][1], text="the cat sat .")
    page = ex.save(tmp_path / "explorer.html").read_text()
    assert "<h3>Head view</h3>" in page and "cdnjs" not in page
    assert ex.save(tmp_path / "heatmap.png").read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in ex.save(tmp_path / "heatmap.svg").read_text()[:2000]
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and "run this cell" in bundle["text/plain"]


# ---------------------------------------------------------------------------------------------------------------
# The architecture in the views and pictures


def test_local_windows_are_what_the_model_computes(models, tokenizer):
    model, tok = models["modernbert"]
    data = viz.read_attention(model, tok, "the cat sat on the mat . the dog ran . it was tired .")
    assert data.windows == [None, 4, 4]
    for i in range(3):
        reached = data.attentions[i] > 0  # (H, T, T): keys that got any probability
        assert (reached == data.allowed(i)[None]).all()  # exactly the window, drawn from the config
    assert data.allowed(1).sum(1).max() == 5  # itself and two on each side


def test_transformers_models_report_their_structure():
    from transformers import EuroBertConfig, EuroBertModel, ModernBertConfig, ModernBertModel

    mb = ModernBertModel(ModernBertConfig(vocab_size=32, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
                                          num_attention_heads=2, local_attention=8, pad_token_id=0))  # fmt: skip
    assert viz.attention_structure(mb) == ([None, 8, 8, None], None)
    eb = EuroBertModel(EuroBertConfig(vocab_size=32, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=6, num_key_value_heads=2, pad_token_id=0))  # fmt: skip
    assert viz.attention_structure(eb) == ([None, None], 2)


def test_shared_key_value_heads_are_drawn(models, tmp_path):
    model, tok = models["eurobert"]
    views = viz.attention_views(model, tok, "the cat sat .")
    assert views.data.kv_groups == [0, 0, 0, 1, 1, 1]
    assert views.head.html.count("K/V ") == 2 and "<polygon" not in views.head.html
    fig = viz.data_grid(views.data)
    assert [ax.get_title() for ax in fig.axes[:4]] == ["head 0 · kv 0", "head 1 · kv 0", "head 2 · kv 0",
                                                       "head 3 · kv 1"]  # fmt: skip
    with pytest.raises(ValueError, match="cannot share 4"):
        viz.prepare(views.data.attentions, views.data.tokens, kv_heads=4)


def test_bert_pages_have_no_architecture_drawing(models):
    views = viz.attention_views(*models["bert"], "the cat sat .")
    assert "minibert-structure" not in views.head.html and views.data.windows == [None] * 3


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_every_view_exports_a_picture(models, tmp_path, suffix):
    views = viz.attention_views(*models["modernbert"], "the cat sat on the mat .")
    for name, path in (("head", views.head.save(tmp_path / f"head{suffix}")),
                       ("model", views.model.save(tmp_path / f"model{suffix}")),
                       ("both", views.save(tmp_path / f"both{suffix}"))):  # fmt: skip
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" if suffix == ".png" else data[:5] in (b"<?xml", b"%PDF-"), name
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf"):
        viz.save_figure(viz.head_view_figure(views.data), tmp_path / "x.jpg")


def test_notebook_display_puts_a_picture_beside_each_view(models):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    views = viz.attention_views(*models["bert"], "the cat sat .")
    with capture_output() as out:
        views.show()
    kinds = [sorted(o.data) for o in out.outputs]
    assert kinds == [["text/html", "text/plain"], ["image/png", "text/plain"]] * 2
    assert "run the cell" in out.outputs[0].data["text/html"] and "<iframe" in out.outputs[0].data["text/html"]


# ---------------------------------------------------------------------------------------------------------------
# Head kinds


def test_head_entropy_and_classes():
    T = 5
    tokens = ["[CLS]", "a", "b", "c", "[SEP]"]
    uniform = torch.full((T, T), 1 / T)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    cls = torch.zeros(T, T)
    cls[:, 0] = 1
    focused = torch.zeros(T, T)  # each query on one content token that is none of the simple targets
    focused[:, 2] = 0.45
    focused[:, 3] = 0.45
    focused[:, 4] = 0.1
    attn = [torch.stack([uniform, prev, cls, focused])[None]]
    ent = viz.head_entropy(attn)
    assert ent[0, 0] == pytest.approx(1) and ent[0, 1] == pytest.approx(0) and ent[0, 2] == pytest.approx(0)
    classes = viz.classify_heads(viz.head_patterns(attn, tokens), ent)
    assert classes == [["broad", "previous", "[CLS]", "other"]]


def test_survey_averages_over_texts_and_counts_kinds(models):
    model, tok = models["bert"]
    texts = [("the cat sat .", "it was tired ."), ("the dog ran on the mat .", "the cat sat .")]
    survey = viz.survey_heads(model, tok, texts, batch_size=1)
    by_hand = {}
    for a, b in texts:
        data = viz.read_attention(model, tok, a, b)
        for name, v in viz.head_patterns(data.attentions, data.tokens).items():
            by_hand[name] = by_hand.get(name, 0) + v / 2
        by_hand["entropy"] = by_hand.get("entropy", 0) + viz.head_entropy(data.attentions) / 2
    for name in viz.PATTERNS:
        torch.testing.assert_close(survey.patterns[name], by_hand[name])
    torch.testing.assert_close(survey.entropy, by_hand["entropy"])
    together = viz.survey_heads(model, tok, texts, batch_size=2)  # padded batches give the same averages
    torch.testing.assert_close(together.entropy, survey.entropy)
    assert sum(survey.counts().values()) == 12 and len(survey.table().splitlines()) == 3
    ax = viz.plot_head_classes(survey.classes(), title="tiny")
    assert ax.get_title() == "tiny"
