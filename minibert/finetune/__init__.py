"""Fine-tuning and sentence embeddings (chapter 08).

Two ways to use a pretrained encoder on a new task:

* **fine-tune** it: put a small head on a pooled vector ([CLS], BERT's pooler, a mean...) and train, either the head
  alone on frozen features (a *linear probe*) or everything (*full fine-tuning*), with early stopping and k-fold
  cross-validation, because the datasets a course can ship are tiny and one split's accuracy is mostly noise;
* **embed** sentences: pool the token vectors into one vector per text, normalise, and compare by cosine.

The pieces take tensors, not texts, so they work with any tokenizer; :func:`encode` turns texts (or text pairs)
into an :class:`Encoded` batch with the tokenizer API of :mod:`minibert.text`.

- ``pooling.py``     token vectors -> one vector per text
- ``data.py``        tokenised data, padded once and trimmed per batch
- ``classifier.py``  a classification head on any encoder, trained with early stopping
- ``search.py``      sentence embeddings and cosine search
- ``metrics.py``     accuracy, F1, mean and spread over folds
- ``evaluation.py``  stratified k-fold cross-validation and a logistic-regression probe
"""

from .classifier import (
    FREEZE_MODES,
    EncoderForSequenceClassification,
    FinetuneConfig,
    FitResult,
    encoder_frozen,
    evaluate,
    fit_classifier,
    predict,
    set_trainable,
)
from .data import Encoded, encode, length_batches, shuffled_batches
from .evaluation import (
    CVResult,
    LogisticRegression,
    cross_validate,
    finetune_fold,
    kfold,
    probe_fold,
    standardize,
    train_val_split,
)
from .metrics import accuracy, f1_score, mean_std
from .pooling import (
    POOLINGS,
    TOKEN_POOLINGS,
    cls_pooling,
    layer_mix,
    max_pooling,
    mean_pooling,
    needs_hidden_states,
    normalize,
    pool,
    weighted_mean_pooling,
)
from .search import cosine_search, cosine_similarity_matrix, embed, retrieval_scores
