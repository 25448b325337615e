"""Pretraining (chapters 06, 07, 10 and 11): the data BERT learns from, and the loop that teaches it.

- ``instances.py``  documents split into sentences, then NSP pairs or single segments (06)
- ``masking.py``    which tokens are predicted, and the 80/10/10 rule (06)
- ``data.py``       batches, a resumable stream, and the course's pretraining setup (06, 07)
- ``optim.py``      AdamW with BERT's warmup and decay; StableAdamW and warmup-stable-decay (07, 10)
- ``trainer.py``    the loss, the trainer with checkpoints and exact resume, saving and using a model (07)
"""

from .data import (
    PretrainingCollator,
    PretrainingData,
    PretrainingStream,
    eval_batches,
    make_pretraining_data,
    pretraining_documents,
    pretraining_tokenizer,
)
from .instances import (
    NSP_IS_NEXT,
    NSP_RANDOM,
    Document,
    Instance,
    build_instances,
    cached_documents,
    instances_from_document,
    pair_instance,
    single_segment_instances,
    split_articles,
    tokenize_documents,
    truncate_seq_pair,
)
from .masking import (
    IGNORE_INDEX,
    Masker,
    apply_mask_rule,
    mask_instances,
    num_to_mask,
    select_tokens,
    select_whole_words,
    word_starts,
)
from .optim import (
    StableAdamW,
    adamw,
    linear_warmup_decay,
    lr_scheduler,
    param_groups,
    stable_adamw,
    wsd,
    wsd_factor,
)
from .trainer import (
    Phase,
    TrainConfig,
    Trainer,
    checkpoint_folders,
    evaluate,
    export_hf,
    fill_mask,
    find_intact_checkpoint,
    init_distributed,
    init_mlm_bias,
    latest_checkpoint,
    load_pretrained,
    perplexity,
    pretraining_sums,
    read_checkpoint,
    save_model,
    token_counts,
)
