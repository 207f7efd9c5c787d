"""An understanding-only VLM through transformers: ``-m vlm:PATH_OR_HUB_ID``.

Any checkpoint that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (Qwen2.5-VL, LLaVA,
InternVL, Gemma 3...): the question goes through the processor's chat template with one image entry per
input image, and answers are decoded with ``generate``. It draws nothing; pair it with a generator
(``pair:vlm:...+diffusers:...``) for the paper's non-unified baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import JsonValue
from transformers import AutoModelForImageTextToText, AutoProcessor

from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
)
from gapeval.models.hf import (
    HFSettings,
    chat_answers,
    checkpoint_identity,
    describe_settings,
    load_pretrained,
    settings_from,
)


class VLMModel:
    """Image + text -> text with a transformers image-text-to-text model."""

    capabilities = Capabilities(understands=True, generates=False, edits=False)

    def __init__(self, model: Any, processor: Any, settings: HFSettings, source: str) -> None:
        self.model, self.processor, self.settings, self.source = model, processor, settings, source
        self.batch_size = settings.batch_size
        self.name = f"vlm:{source}"

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The checkpoint's identity."""
        s = settings_from(HFSettings, arg, options, "vlm")
        return checkpoint_identity(arg, s.revision)

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> VLMModel:
        """Load model and processor.

        Options: dtype, device, device_map, attn_implementation, revision, batch_size, max_new_tokens,
        temperature.
        """
        s: HFSettings = settings_from(HFSettings, arg, options, "vlm")
        model, processor = load_pretrained(AutoModelForImageTextToText, AutoProcessor, arg, s, "VLM")
        return cls(model, processor, s, arg)

    def describe(self) -> dict[str, Any]:
        """Family, model class, checkpoint, parameter count and decoding settings."""
        return {
            **describe_settings(self.settings),
            "family": "vlm",
            "class": type(self.model).__name__,
            "checkpoint": self.source,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(next(self.model.parameters()).device),
            "seed_scope": "request",
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answer each request: batched when greedy, one by one under its seed when sampling."""
        return [TextOutput(text=t) for t in chat_answers(self.model, self.processor, requests, self.settings)]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Never called: the capabilities say this model does not draw."""
        return [ImageOutput(error="this VLM does not generate images") for _ in requests]
