"""Text (chapter 03, and the course's corpus): the Wikipedia excerpt, BERT's WordPiece tokenizer, byte-level BPE.

- ``corpus.py``        the Wikipedia excerpts shipped with gensim's test data, cleaned into articles and sentences
- ``normalize.py``     BERT's basic tokenizer: Unicode character classes, normalization, the split into words (03)
- ``wordpiece.py``     WordPiece and BERT's tokenizer, equal to Hugging Face's token for token (03)
- ``bpe.py``           byte-level BPE, the tokenizer of GPT-2, RoBERTa, ModernBERT and EuroBERT (03)
- ``train.py``         training both: one merge step written plainly, the incremental learner they share (03)
- ``multilingual.py``  a parallel corpus from the system's translation catalogues, tokens per word (11)
"""

from . import multilingual
from .bpe import ByteLevelBPE, bytes_to_unicode, gpt2_pattern, pre_tokenize
from .corpus import WIKI_DUMPS, Article, clean_wiki, gensim_datapath, split_sentences, wikipedia, wikipedia_lines
from .normalize import basic_tokenize, normalize
from .train import learn_merges, merge_pair, pair_scores, split_words, train_bpe, train_wordpiece
from .wordpiece import CLS, MASK, PAD, SEP, SPECIAL_TOKENS, UNK, BertTokenizer, read_vocab, truncate, wordpiece
