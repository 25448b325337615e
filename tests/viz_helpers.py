"""What the attention-view tests share: a word-level tokenizer and models whose attention is far from uniform."""

from pathlib import Path

import torch

from minibert.text import BertTokenizer

WORDS = "the cat sat on mat . it was tired dog ran".split()
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def word_tokenizer(folder: Path) -> BertTokenizer:
    """A tokenizer whose vocabulary is the special tokens and WORDS, one piece per word."""
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join([*SPECIALS, *WORDS]) + "\n", encoding="utf-8")
    return BertTokenizer.from_vocab_file(vocab)


def sharp(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Larger random weights than BERT's initialisation: attention that is far from uniform."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()
