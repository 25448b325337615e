"""Hugging Face interop (chapters 00, 09, 10 and 11): transformers checkpoints into minibert, and minibert back out.

minibert's parameter names follow the paper and the modern checkpoints (``Wqkv``, ``Wo``, ``attn_norm``), so each
family's conversion is a table of names read both ways, plus the matrices minibert fuses.

- ``naming.py``      the shared mechanism: a ``Format`` per model_type (name tables, fused matrices, config fields)
- ``bert.py``        BERT: config both ways, its names (``attention.self.query``, ``LayerNorm``, ``cls.``) (09)
- ``modernbert.py``  ModernBERT: config both ways (layer kinds, two rotary bases); names move by prefix (10)
- ``eurobert.py``    EuroBERT: config both ways; Llama's names, with q/k/v and gate/up fused (11)
- ``loading.py``     ``from_pretrained``, ``save_pretrained``, ``load_into`` with a clear report; the MiniLM weights
"""

from ..encoder.model import Encoder
from ..files import CheckpointError
from .bert import bert_config_from_hf, bert_config_to_hf
from .eurobert import eurobert_config_from_hf, eurobert_config_to_hf
from .loading import (
    FORMATS,
    MINILM_PACKAGE,
    config_from_hf,
    format_of,
    from_pretrained,
    load_into,
    load_minilm,
    minilm_path,
    read_hf_config,
    save_pretrained,
    state_dict_from_hf,
    state_dict_to_hf,
)
from .modernbert import modernbert_config_from_hf, modernbert_config_to_hf
from .naming import Format

minibert_state_dict_to_bert = FORMATS["bert"].state_dict_to_hf  # (state dict, config) -> transformers' BERT names
