"""Word embeddings (chapters 01 and 02): word2vec from scratch, its benchmarks, and static against contextual vectors.

- ``vocab.py``       the words word2vec reads and their vocabulary (01)
- ``word2vec.py``    skip-gram and CBOW with negative sampling, batched, with the original recipe (01)
- ``vectors.py``     word vectors: similarity, neighbours, analogies, save and load (01)
- ``evaluation.py``  wordsim353, simlex999 and Google analogies, counted as gensim counts (01)
- ``contextual.py``  a word's vector in context at every layer, self-similarity, sense separation, ELMo's mix (02)
"""

from .contextual import contextual_vectors, find_word, scalar_mix, self_similarity, sense_separation
from .evaluation import (
    BENCHMARKS,
    AnalogyScore,
    PairScore,
    benchmark_path,
    evaluate,
    evaluate_analogies,
    evaluate_word_pairs,
)
from .vectors import KeyedVectors, cosine_matrix
from .vocab import Vocab, tokenize, wikipedia_sentences
from .word2vec import (
    TrainingReport,
    Word2Vec,
    Word2VecConfig,
    draw_negatives,
    dynamic_windows,
    negative_sampling_loss,
    skipgram_pairs,
    subsample,
    train_word2vec,
)
