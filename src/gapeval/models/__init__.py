"""Models: the unified-model protocol, the adapter registry and the adapters."""

from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    TextOutput,
    UnderstandRequest,
    UnifiedModel,
    available_models,
    load_model,
)

__all__ = [
    "Capabilities",
    "GenerateRequest",
    "ImageOutput",
    "TextOutput",
    "UnderstandRequest",
    "UnifiedModel",
    "available_models",
    "load_model",
]
