"""Attention views: offline bertviz pages rendered in headless Chromium, budgets, heatmaps and head patterns."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from viz_helpers import WORDS, word_tokenizer

from minibert import viz
from minibert.config import EncoderConfig
from minibert.encoder import Encoder, EncoderForPreTraining
from minibert.text import BertTokenizer

TEXT, PAIR = "The cat sat on the mat.", "It was tired."


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> BertTokenizer:
    return word_tokenizer(tmp_path_factory.mktemp("vocab"))


def tiny_config(**kw) -> EncoderConfig:
    base = dict(vocab_size=5 + len(WORDS), hidden_size=24, num_layers=3, num_heads=4, intermediate_size=32,
                max_position_embeddings=64)  # fmt: skip
    return EncoderConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def model() -> Encoder:
    torch.manual_seed(0)
    return Encoder(tiny_config()).eval()


def random_attention(L=3, H=4, T=9, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, H, T, T, generator=g).softmax(-1) for _ in range(L)]


def params_of(page: str) -> dict:
    """The params JSON that bertviz embeds in its drawing script."""
    m = re.search(r"const params = (\{.*\});", page)  # one line
    assert m, "no params in the page"
    return json.loads(m[1])


# ---------------------------------------------------------------------------------------------------------------
# Pages: self-contained, small, labelled with the model's own layer numbers


def test_pages_fetch_nothing_and_inline_their_code(model, tokenizer):
    views = viz.attention_views(model, tokenizer, TEXT, PAIR)
    for page in (views.head.html, views.model.html):
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", page), "the page must not load anything"
        assert not re.search(r"\b(src|href)\s*=", page) and "cdnjs" not in page and "require.config" not in page
        assert page.count("const params = ") == 1 and page.count('"root_div_id"') == 1  # the data once, not twice
        assert "requirejs(" in page and "schemeCategory10" in page  # bertviz's code and our d3 stand-in
    iframe = views._repr_html_()
    assert iframe.count("<iframe srcdoc=") == 2 and 'sandbox="allow-scripts"' in iframe


def test_views_of_a_sentence_pair(model, tokenizer):
    views = viz.attention_views(model, tokenizer, TEXT, PAIR)
    d = views.data
    assert d.tokens == "[CLS] the cat sat on the mat . [SEP] it was tired . [SEP]".split()
    assert d.sentence_b_start == 9
    assert d.attentions.shape == (3, 4, 14, 14) and d.notes == []
    with torch.no_grad():
        b = tokenizer([TEXT], [PAIR])
        ref = model(b["input_ids"], b["attention_mask"], b["token_type_ids"], output_attentions=True).attentions
    torch.testing.assert_close(d.attentions, torch.cat(ref))
    params = params_of(views.head.html)
    names = [a["name"] for a in params["attention"]]
    assert names == ["All", "Sentence A -> Sentence A", "Sentence B -> Sentence B", "Sentence A -> Sentence B",
                     "Sentence B -> Sentence A"]  # fmt: skip
    assert params["include_layers"] == [0, 1, 2]


def test_probabilities_are_rounded(model, tokenizer):
    views = viz.attention_views(model, tokenizer, TEXT, decimals=2)
    values = np.array(params_of(views.model.html)["attention"][0]["attn"]).ravel()
    assert np.allclose(values, np.round(values, 2))
    assert np.allclose(values.reshape(3, 4, 9, 9).sum(-1), 1, atol=0.05)  # rows still sum to ~1


def test_pretraining_model_and_training_mode_are_handled(tokenizer):
    torch.manual_seed(0)
    m = EncoderForPreTraining(tiny_config()).train()
    a = viz.attention_views(m, tokenizer, TEXT).data.attentions
    b = viz.attention_views(m.encoder, tokenizer, TEXT).data.attentions
    torch.testing.assert_close(a, b)  # eval mode inside: no dropout, same probabilities
    assert m.training, "the model's mode is restored"


def test_transformers_model_gives_the_same_views(tokenizer):
    from transformers import BertConfig, BertModel

    from minibert import hf

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=5 + len(WORDS), hidden_size=24, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=32, max_position_embeddings=64, attn_implementation="eager")  # fmt: skip
    ref = BertModel(cfg).eval()
    mine = hf.from_pretrained(ref.state_dict(), model_class=Encoder, config=hf.bert_config_from_hf(cfg.to_dict()))
    a = viz.attention_views(ref, tokenizer, TEXT, PAIR).data.attentions
    b = viz.attention_views(mine, tokenizer, TEXT, PAIR).data.attentions
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_budget_keeps_first_and_last_layers_and_says_so():
    attn = random_attention(L=12, H=12, T=40)
    data = viz.prepare(attn, [f"t{i}" for i in range(40)], max_values=4 * 12 * 40 * 40)
    assert data.layers == [0, 4, 7, 11] and data.heads == list(range(12))
    assert data.attentions.shape == (4, 12, 40, 40)
    assert "layers [0, 4, 7, 11] of 12" in data.note
    torch.testing.assert_close(data.attentions[1], attn[4][0])
    views = viz.AttentionViews(data)
    assert params_of(views.model.html)["include_layers"] == [0, 4, 7, 11]
    assert params_of(views.head.html)["include_layers"] == [0, 4, 7, 11]
    assert "layers [0, 4, 7, 11] of 12" in views.head.html
    assert params_of(viz.head_view_page(data, layer=7).html)["layer"] == 7  # opens on that layer
    with pytest.raises(ValueError, match="not among the layers shown"):
        viz.head_view_page(data, layer=5)


def test_budget_cuts_heads_when_one_layer_is_too_big():
    data = viz.prepare(random_attention(L=2, H=12, T=30), [str(i) for i in range(30)], max_values=3 * 30 * 30)
    assert data.layers == [0] and data.heads == [0, 6, 11]


def test_long_inputs_are_cut_to_max_tokens(model, tokenizer):
    long = " ".join(["the cat sat on the mat ."] * 20)
    views = viz.attention_views(model, tokenizer, long, max_tokens=32)
    assert len(views.data.tokens) == 32 and views.data.tokens[-1] == "[SEP]"  # truncated by the tokenizer
    data = viz.prepare(random_attention(T=50), [str(i) for i in range(50)], sentence_b_start=40, max_tokens=20)
    assert data.attentions.shape[-1] == 20 and data.sentence_b_start is None
    assert "first 20 of 50 tokens" in data.note


def test_a_large_model_stays_a_page_a_browser_opens():
    # bertviz's own page for 12 layers x 12 heads x 64 tokens is about 26 MB
    attn = random_attention(L=12, H=12, T=64)
    views = viz.AttentionViews.from_attentions(attn, [f"w{i}" for i in range(64)], sentence_b_start=30)
    assert len(views.head.html) < 4e6 and len(views.model.html) < 4e6
    assert views.data.notes  # it says what it left out


def test_tokens_cannot_break_the_page():
    views = viz.AttentionViews.from_attentions(random_attention(L=1, H=2, T=3), ["</script>", "<!--", "a"])
    for page in (views.head.html, views.model.html):
        assert page.count("</script>") == 2 and "<!--" not in page  # the stand-in's and the drawing's own


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tokens=["a"] * 8), "8 tokens for attention over 9 positions"),
        (dict(attentions=[torch.rand(2, 4, 9, 9)]), "batch of 2"),
        (dict(attentions=[None, None]), "output_attentions=True"),
        (dict(layers=[5]), r"layers \[5\] do not exist"),
        (dict(sentence_b_start=9), "sentence_b_start=9"),
    ],
)
def test_bad_input_says_what_to_do(kwargs, message):
    args = dict(attentions=random_attention(), tokens=[str(i) for i in range(9)])
    with pytest.raises(ValueError, match=message):
        viz.prepare(**{**args, **kwargs})


# ---------------------------------------------------------------------------------------------------------------
# Heatmaps and head patterns


def test_attention_grid_draws_every_layer_and_head():
    import matplotlib

    matplotlib.use("Agg")
    fig = viz.attention_grid(random_attention(L=2, H=3, T=5), list("abcde"))
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["head 0", "head 1", "head 2"]
    assert fig.axes[0].get_ylabel() == "layer 0"
    ax = viz.plot_attention(random_attention(L=1, T=5)[0][0, 0], list("abcde"))
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcde")
    matplotlib.pyplot.close("all")


def test_head_patterns_find_planted_heads():
    T = 6
    tokens = ["[CLS]", "a", "b", "a", "[SEP]", "[SEP]"]
    eye = torch.eye(T)
    prev = torch.zeros(T, T)
    prev[0, 0] = 1
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1
    sep = torch.zeros(T, T)
    sep[:, 4] = 1
    same = eye.clone()
    same[1], same[3] = torch.eye(T)[3], torch.eye(T)[1]  # the two "a"s look at each other
    attn = [torch.stack([eye, prev, sep, same])[None]]  # one layer, four heads
    p = viz.head_patterns(attn, tokens)
    assert p["self"][0].tolist() == pytest.approx([1, 1 / 6, 1 / 6, 4 / 6])
    assert p["previous"][0, 1] == 1 and p["next"][0, 1] == 0
    assert p["[SEP]"][0, 2] == 1 and p["[CLS]"][0, 2] == 0
    # queries whose token repeats: the two "a"s and the two [SEP]s
    assert p["same word"][0].tolist() == [0, 0.25, 0.25, 0.5]
    top = viz.top_heads(p, k=1)
    assert top["previous"] == [(0, 1, 1.0)] and top["[SEP]"][0][:2] == (0, 2)


# ---------------------------------------------------------------------------------------------------------------
# In a browser with the network off: the drawing is there, not only the dropdowns


def chromium() -> str | None:
    """A Chromium or Chrome binary: $MINIBERT_CHROMIUM, one on the PATH, or Chrome's usual place on macOS/Windows."""
    names = [os.environ.get("MINIBERT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
             "google-chrome-stable", "chrome"]  # fmt: skip
    for name in filter(None, names):
        if shutil.which(name):
            return shutil.which(name)
    places = [Path("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome"),
              Path("/Applications/Chromium.app/Contents/MacOS/Chromium")]  # fmt: skip
    for root in filter(None, (os.environ.get(v) for v in ("PROGRAMFILES", "PROGRAMFILES(X86)", "LOCALAPPDATA"))):
        places.append(Path(root) / "Google" / "Chrome" / "Application" / "chrome.exe")
    return next((str(p) for p in places if p.is_file()), None)


_no_chromium = pytest.mark.skipif(
    chromium() is None,
    reason="no Chromium or Chrome found (apt-get install -y chromium, or set MINIBERT_CHROMIUM to a Chrome binary)",
)


def needs_chromium(test):
    return pytest.mark.slow(_no_chromium(test))


def render(path: Path, screenshot: Path | None = None, size: str = "1100,1400", ready=None, tries: int = 3) -> str:
    """Open a file in headless Chromium with the network off; return the DOM after the scripts ran.

    The browser runs on virtual time (timers fire without waiting) and composites every frame before it draws, so
    a page's scripts have drawn before the DOM is dumped or the screenshot taken. On a loaded machine a frame can
    still come late: when ``ready(dom_or_screenshot)`` says the result is not there yet, it tries again, with twice
    the time budget, at most ``tries`` times.
    """
    budget = 5000
    for attempt in range(tries):
        with tempfile.TemporaryDirectory() as profile:
            args = [
                chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}",
                # the network is off: every host fails to resolve, and anything else goes to a dead proxy
                "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=<-loopback>", "--run-all-compositor-stages-before-draw",
                f"--virtual-time-budget={budget}", f"--window-size={size}",
            ]  # fmt: skip
            args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
            out = subprocess.run(args + [path.as_uri()], capture_output=True, encoding="utf-8", errors="replace",
                                 timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        if ready is None or ready(screenshot if screenshot else out.stdout) or attempt == tries - 1:
            return out.stdout
        budget *= 2
    raise AssertionError("unreachable")


def count_lines(dom: str, root_id: str) -> tuple[int, float]:
    """(number of <line> elements, total stroke opacity) drawn inside the view whose root div has root_id."""
    part = dom.split(f'id="{root_id}"', 1)[1].split('id="bertviz-', 1)[0]
    opacities = [float(x) for x in re.findall(r'<line [^>]*stroke-opacity="([0-9.e-]+)"', part)]
    return part.count("<line "), sum(opacities)


@needs_chromium
def test_both_views_draw_offline(tmp_path, model, tokenizer):
    views = viz.attention_views(model, tokenizer, TEXT, PAIR)
    dom = render(views.save(tmp_path / "attention.html"), ready=lambda dom: dom.count("<line ") > 0)
    assert '<pre class="minibert-error">' not in dom
    T, L, H = 14, 3, 4
    head_id, model_id = (params_of(p.html)["root_div_id"] for p in (views.head, views.model))
    lines, ink = count_lines(dom, head_id)
    assert lines == H * T * T and ink > 0.5 * T  # layer 0: a line per head, query and key, weighted by probability
    assert dom.count("<option value=") == L + 5 * 2  # the layer menu and both "Attention:" menus
    lines, ink = count_lines(dom, model_id)
    assert lines == L * H * T * T and ink > 0.5 * L * H * T  # every thumbnail
    for token in ("[CLS]", "tired", "[SEP]"):
        assert f">{token}</text>" in dom


@needs_chromium
def test_each_page_draws_alone(tmp_path):
    views = viz.AttentionViews.from_attentions(random_attention(L=2, H=3, T=7), list("abcdefg"))
    for page, expected in ((views.head, 3 * 7 * 7), (views.model, 2 * 3 * 7 * 7)):
        dom = render(page.save(tmp_path / f"{page.title.replace(' ', '_')}.html"), ready=lambda d: "<line " in d)
        assert dom.count("<line ") == expected


@needs_chromium
def test_bertviz_alone_draws_nothing_offline(tmp_path):
    """The control: bertviz's own page, with the same browser flags, shows only its empty menus."""
    from bertviz import head_view

    page = head_view(random_attention(L=2, H=3, T=7), list("abcdefg"), html_action="return").data
    path = tmp_path / "bertviz.html"
    path.write_text(f"<!DOCTYPE html><html><body>{page}</body></html>", encoding="utf-8")
    dom = render(path)
    assert "<select" in dom and "<line " not in dom and "<option value=" not in dom


@needs_chromium
def test_notebook_iframe_draws_on_first_load(tmp_path):
    """The notebook output (two iframes with srcdoc) draws in a page that runs no script of its own."""
    views = viz.AttentionViews.from_attentions(random_attention(L=2, H=4, T=8), list("abcdefgh"), sentence_b_start=4)
    page = tmp_path / "notebook_output.html"
    page.write_text(
        f"<!DOCTYPE html><html><body style='margin:0'>{views._repr_html_()}</body></html>", encoding="utf-8"
    )
    head_rows = slice(0, views.head.height)
    model_rows = slice(views.head.height + 20, views.head.height + views.model.height)

    def coloured(shot: Path) -> tuple[int, int]:
        """Strongly coloured pixels in the head view and in the model view: an empty view is black, white, grey."""
        import matplotlib.image

        rgb = matplotlib.image.imread(shot)[..., :3]  # (H, W, 3) floats in 0..1
        saturation = rgb.max(-1) - rgb.min(-1)
        return int((saturation[head_rows] > 0.3).sum()), int((saturation[model_rows] > 0.3).sum())

    def drawn(shot: Path) -> bool:  # the head-colour squares and the attention lines
        head, model = coloured(shot)
        return head > 500 and model > 5000

    shot = tmp_path / "shot.png"
    render(page, screenshot=shot, ready=drawn)
    assert drawn(shot), coloured(shot)
