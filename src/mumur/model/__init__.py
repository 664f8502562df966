"""The retrieval model: encoders (vision, English text, multilingual text) + a method head.

`create_model(name, **overrides)` builds one from a registered head name; `RetrievalModel.save`
writes ``config.json`` + ``model.safetensors`` (head weights) + one subfolder per encoder (written
by the encoder's own `save`, tokenizer included; never pickle); `load_model(path)` reads it back.
Encoders are optional: a model without them scores precomputed features (feature caches).
"""


from .factory import create_model, load_model
from .retrieval import RetrievalModel
from .spec import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    MediaFeatures,
    ModelConfig,
    branch_for_language,
    list_models,
)

__all__ = [
    "CONFIG_FILE",
    "WEIGHTS_FILE",
    "MediaFeatures",
    "ModelConfig",
    "RetrievalModel",
    "branch_for_language",
    "create_model",
    "list_models",
    "load_model",
]
