"""An understanding-only VLM through transformers: ``-m vlm:PATH_OR_HUB_ID``.

Any checkpoint that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (Qwen2.5-VL, LLaVA,
InternVL, Gemma 3...): the question goes through the processor's chat template with one image entry per
input image, and answers are decoded with ``generate``. It draws nothing; pair it with a generator
(``pair:vlm:...+diffusers:...``) for the paper's non-unified baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import AutoModelForImageTextToText, AutoProcessor

from gapeval.models.base import Capabilities, GenerateRequest, ImageOutput
from gapeval.models.hf import ChatModel


class VLMModel(ChatModel):
    """Image + text -> text with a transformers image-text-to-text model.

    Options: dtype, device, device_map, attn_implementation, revision, batch_size, max_new_tokens,
    temperature.
    """

    family = "vlm"
    model_class = AutoModelForImageTextToText
    processor_class = AutoProcessor
    capabilities = Capabilities(understands=True, generates=False, edits=False)

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Never called: the capabilities say this model does not draw."""
        return [ImageOutput(error="this VLM does not generate images") for _ in requests]
