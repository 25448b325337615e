"""Pretraining (chapters 06, 07, 10 and 11): the data BERT learns from, and the loop that teaches it.

- ``instances.py``  documents split into sentences, then NSP pairs or single segments (06)
- ``masking.py``    which tokens are predicted, and the 80/10/10 rule (06)
- ``data.py``       batches, a resumable stream, and the course's pretraining setup (06, 07)
- ``optim.py``      AdamW with BERT's warmup and decay; StableAdamW and warmup-stable-decay (07, 10)
- ``objective.py``  the MLM (and NSP) loss at the masked positions, evaluation, the MLM bias's start (07)
- ``trainer.py``    the training loop: accumulation, evaluation, checkpoints and exact resume (07)
- ``checkpoints.py`` minibert's model format; a run's checkpoints, read, checked and resumed exactly (07)
- ``distributed.py`` data-parallel training under torchrun (07)
- ``pretrained.py`` using a pretrained model: load, export to transformers, fill-mask (07)
- ``recipe.py``     chapter 07's recipe in one place; the course's model, saved for the chapters after it (07-09)
"""

from .checkpoints import (
    checkpoint_folders,
    find_intact_checkpoint,
    latest_checkpoint,
    read_checkpoint,
    save_model,
)
from .data import (
    PretrainingCollator,
    PretrainingData,
    PretrainingStream,
    eval_batches,
    make_pretraining_data,
    pretraining_documents,
    pretraining_tokenizer,
)
from .distributed import init_distributed
from .instances import (
    NSP_IS_NEXT,
    NSP_RANDOM,
    PAIR_RULES,
    Document,
    Instance,
    balanced_instances_from_document,
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
from .objective import evaluate, init_mlm_bias, perplexity, pretraining_sums, token_counts
from .optim import (
    StableAdamW,
    adamw,
    linear_warmup_decay,
    lr_scheduler,
    param_groups,
    stable_adamw,
    warmup_then_decay,
    wsd,
    wsd_factor,
)
from .pretrained import export_hf, fill_mask, load_pretrained
from .recipe import (
    COURSE_RECIPE,
    Recipe,
    course_model_info,
    course_model_path,
    recipe_data,
    recipe_model,
    recipe_trainer,
    save_course_model,
)
from .trainer import Phase, TrainConfig, Trainer, split_steps
