"""The drawn diagrams say what the code does."""

import pytest
import torch

from minibert import preset
from minibert.course.diagrams import attention_directions, block_steps, norm_placement, visible_context
from minibert.encoder import EncoderBlock


@pytest.mark.parametrize("name", ["bert-tiny", "modernbert-tiny", "eurobert-tiny"])
def test_the_block_diagram_is_the_blocks_computation(name):
    config = preset(name, vocab_size=64, pad_token_id=0)
    steps = block_steps(config)
    block = EncoderBlock(config, layer=1).eval()
    x = torch.randn(1, 4, config.hidden_size, generator=torch.Generator().manual_seed(0))
    norms = iter([block.attn_norm, block.mlp_norm])
    stream = h = x
    for step in steps[1:-1]:  # run the diagram, box by box, with the block's own modules
        if step == "norm":
            h = next(norms)(h)
            if config.norm_position == "post":
                stream = h  # post-LN: the normalised sum is the stream
        elif step == "attention":
            h = block.attn(h)[0]
        elif step == "feed-forward":
            h = block.mlp(h)
        elif step == "add":
            h = stream = stream + h
    assert torch.allclose(h, block(x)[0], atol=1e-5)


def test_visible_context_and_the_figures_draw():
    assert visible_context("GPT", 2, 5) == [[0, 1, 2]]
    assert visible_context("BERT", 2, 5) == [[0, 1, 2, 3, 4]]
    assert visible_context("ELMo", 2, 5) == [[0, 1, 2], [2, 3, 4]]
    with pytest.raises(ValueError, match="unknown model"):
        visible_context("XLNet", 0, 3)
    assert len(norm_placement().axes) == 2 and len(attention_directions().axes) == 3
