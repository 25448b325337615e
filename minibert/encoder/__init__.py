"""The encoder (chapters 04, 05, 10 and 11): one model for BERT, ModernBERT and EuroBERT, shaped by its config.

- ``attention.py``  multi-head self-attention as the papers write it: project, rotate, attend, merge (04, 10, 11)
- ``kernels.py``    the kernels that compute attention fast (SDPA, local blocks, unpadded streams); the batch state
- ``batch.py``      padding, unpadding and packing: how sequences of different lengths reach the layers (10)
- ``layers.py``     norms, the feed-forward network, embeddings, the encoder block (05, 10, 11)
- ``model.py``      the encoder and its pretraining heads (MLM, NSP) (05)
- ``inference.py``  the encoder's inference path: the same function with fewer trips through memory
"""

from .attention import (
    MultiHeadAttention,
    RotaryEmbedding,
    apply_rotary,
    attend,
    attention_with_probs,
    combine_masks,
    padding_mask,
    rotate_half,
    sliding_window_mask,
)
from .batch import Unpadded, pack_sequences, padded_state, positions_in_documents, unpad_batch
from .kernels import BatchState, local_attention, local_block_mask, varlen_attention
from .layers import ACTIVATIONS, MLP, Embeddings, EncoderBlock, RMSNorm, make_norm
from .model import (
    Encoder,
    EncoderForPreTraining,
    EncoderOutput,
    MLMHead,
    Pooler,
    PreTrainingOutput,
    check_inputs,
    init_weights,
)
