"""minibert: BERT from the ground up, and its upgrades to ModernBERT and EuroBERT."""

from .config import PRESETS, EncoderConfig, preset
from .encoder import (
    Encoder,
    EncoderForPreTraining,
    EncoderOutput,
    PreTrainingOutput,
)
from .finetune import EncoderForSequenceClassification
from .runtime import by_profile, get_device, profile, seed_everything

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "Encoder",
    "EncoderConfig",
    "EncoderForPreTraining",
    "EncoderForSequenceClassification",
    "EncoderOutput",
    "PreTrainingOutput",
    "by_profile",
    "get_device",
    "preset",
    "profile",
    "seed_everything",
]
