"""Janus and Janus-Pro in transformers: ``-m janus:PATH_OR_HUB_ID`` (``deepseek-community/Janus-Pro-1B``).

- Understanding: the processor's chat template with one image placeholder per input image, batched
  ``generate`` (left padded). Greedy by default; with ``temperature > 0`` each request is sampled alone
  under its own seed, so its answer does not depend on its batch.
- Generation: classifier-free guidance over 576 (``num_image_tokens``) image tokens, in a loop of our
  own rather than ``generate(generation_mode="image")``: transformers draws every row from one global RNG,
  so an image would depend on the batch it was drawn in. Here row ``r`` is sampled from a generator
  seeded with request ``r``'s seed, positions come from the attention mask (left padding shifts nothing),
  and the unconditional prompt keeps only BOS and BOI, as in the authors' code.
- Janus cannot edit: an edit request is unsupported (a capability), never a failure.
- ``decode_image_tokens`` returns channels-last pixels in [-1, 1]; they become RGB PIL images here (the
  image processor's ``postprocess`` rejects that layout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import JanusForConditionalGeneration, JanusProcessor

from gapeval.errors import GapevalError
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
)
from gapeval.models.hf import (
    ChatModel,
    HFSettings,
    cache_kwarg,
    cache_of,
    generators,
    sample_rows,
    to_pil,
)


def image_prompts(processor: Any, prompts: Sequence[str]) -> list[str]:
    """Drawing instructions as one user turn each, through the chat template (the adapter's layout)."""
    return [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "text", "text": p}]}], add_generation_prompt=True
        )
        for p in prompts
    ]


def image_inputs(processor: Any, prompts: Sequence[str], device: Any) -> tuple[Any, Any]:
    """Token ids and attention mask of chat prompts ending in the image-start token.

    Sampling (:meth:`JanusModel.image_tokens`) and the knowledge experiments' image-token loss both
    start from these, so training sees exactly the sequence the adapter samples from.
    """
    inputs = processor(text=list(prompts), generation_mode="image", return_tensors="pt", padding=True)
    return inputs["input_ids"].to(device), inputs["attention_mask"].to(device)


@dataclass
class JanusSettings(HFSettings):
    """:class:`~gapeval.models.hf.HFSettings` plus image-generation settings.

    Attributes:
        guidance_scale: Classifier-free guidance weight (the authors use 5).
        image_temperature: Sampling temperature of image tokens (the authors use 1).

    """

    guidance_scale: float = 5.0
    image_temperature: float = 1.0


class JanusModel(ChatModel):
    """Janus / Janus-Pro: understands and generates; cannot edit.

    Options: dtype, device, device_map, attn_implementation, revision, batch_size, max_new_tokens,
    temperature, guidance_scale, image_temperature.
    """

    family = "janus"
    settings_class = JanusSettings
    model_class = JanusForConditionalGeneration
    processor_class = JanusProcessor
    capabilities = Capabilities(understands=True, generates=True, edits=False)
    settings: JanusSettings

    def __init__(self, model: Any, processor: Any, settings: JanusSettings, source: str) -> None:
        super().__init__(model, processor, settings, source)
        tok = processor.tokenizer
        self._boi = tok.convert_tokens_to_ids(processor.image_start_token)
        self._bos = tok.bos_token_id
        self._pad = tok.pad_token_id if tok.pad_token_id is not None else model.generation_config.pad_token_id
        self._n_image_tokens = int(model.config.vision_config.num_image_tokens)
        self._lm = model.model.language_model
        self._cache_name = cache_kwarg(self._lm)

    def describe(self) -> dict[str, Any]:
        """Family, checkpoint, parameter count, image tokens and decoding settings."""
        return {**super().describe(), "image_tokens": self._n_image_tokens}

    # -- generation ----------------------------------------------------------------------------------

    def _step(self, embeds: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs = {self._cache_name: cache} if cache is not None else {}
        return self._lm(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs
        )

    @torch.inference_mode()
    def image_tokens(self, prompts: Sequence[str], seeds: Sequence[int]) -> Any:
        """Image-token ids ``(B, num_image_tokens)`` for chat prompts, row ``r`` drawn under ``seeds[r]``.

        Classifier-free guidance: the conditional rows are the prompts; the unconditional rows are the
        same positions with every token but BOS and BOI replaced by padding.
        """
        s = self.settings
        ids, mask = image_inputs(self.processor, prompts, self.device)
        n = ids.shape[0]
        uncond = ids.clone()
        blank = (uncond != self._bos) & (uncond != self._boi) & mask.bool()
        uncond[blank] = self._pad
        mask2 = torch.cat([mask, mask])
        positions = (mask2.cumsum(-1) - 1).clamp(min=0)
        embeds = self.model.get_input_embeddings()(torch.cat([ids, uncond]))
        gens = generators(seeds, self.device)
        out = self._step(embeds, mask2, positions, None)
        tokens = torch.empty((n, self._n_image_tokens), dtype=torch.long, device=self.device)
        for i in range(self._n_image_tokens):
            logits = self.model.model.generation_head(out.last_hidden_state[:, -1, :]).float()
            cond, unc = logits[:n], logits[n:]
            guided = unc + s.guidance_scale * (cond - unc)
            if s.image_temperature > 0:
                nxt = sample_rows(torch.softmax(guided / s.image_temperature, dim=-1), gens)
            else:
                nxt = guided.argmax(dim=-1)
            tokens[:, i] = nxt
            if i + 1 == self._n_image_tokens:
                break
            embeds = self.model.prepare_embeddings_for_image_generation(torch.cat([nxt, nxt]).unsqueeze(-1))
            mask2 = torch.cat([mask2, mask2.new_ones((2 * n, 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = self._step(embeds, mask2, positions, cache_of(out))
        return tokens

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """One image per request (edits are refused: the executor never sends them, capabilities say so)."""
        if any(r.input_image for r in requests):
            raise GapevalError("Janus cannot edit images", field="model")
        tokens = self.image_tokens(image_prompts(self.processor, [r.prompt for r in requests]),
                                   [r.seed for r in requests])  # fmt: skip
        with torch.inference_mode():
            pixels = self.model.decode_image_tokens(tokens)
        return [ImageOutput(image=to_pil(p, channels_last=True)) for p in pixels]
