"""Text (chapter 03, and the course's corpus): the Wikipedia excerpt, BERT's WordPiece tokenizer, byte-level BPE.

- ``corpus.py``        the Wikipedia excerpts shipped with gensim's test data, cleaned into articles and sentences
- ``wordpiece.py``     BERT's tokenizer, equal to Hugging Face's token for token, and a WordPiece trainer (03)
- ``bpe.py``           byte-level BPE (GPT-2, RoBERTa, ModernBERT) and its trainer (03)
- ``multilingual.py``  a parallel corpus from the system's translation catalogues, tokens per word (11)
"""

from . import multilingual
from .bpe import ByteLevelBPE, bytes_to_unicode, gpt2_pattern, pre_tokenize, train_bpe
from .corpus import WIKI_DUMPS, Article, clean_wiki, gensim_datapath, split_sentences, wikipedia, wikipedia_lines
from .wordpiece import (
    CLS,
    MASK,
    PAD,
    SEP,
    SPECIAL_TOKENS,
    UNK,
    BertTokenizer,
    basic_tokenize,
    merge_pair,
    normalize,
    pair_scores,
    read_vocab,
    split_words,
    train_wordpiece,
    truncate,
    wordpiece,
)
