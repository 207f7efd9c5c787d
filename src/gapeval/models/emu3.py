"""Emu3 through transformers: ``-m emu3:CHAT_PATH,GEN_PATH`` (``BAAI/Emu3-Chat-hf,BAAI/Emu3-Gen-hf``).

Emu3 ships one checkpoint that answers (Chat) and one that draws (Gen), both
``Emu3ForConditionalGeneration``; each is loaded the first time its direction is asked for. One path
serves both (``emu3:PATH``).

- Understanding: the Chat checkpoint's chat template and batched ``generate`` (as the ``vlm`` adapter).
- Generation: the image is a grid of visual tokens, ``H`` rows of ``W`` tokens each closed by an
  end-of-line token, then end-of-frame, end-of-image and end-of-sequence. transformers asks for a
  ``prefix_allowed_tokens_fn`` to keep ``generate`` on that grid and draws every row of a batch from one
  global RNG; here the grid is walked in a loop of our own: end-of-line positions are forced, every other
  position samples only visual tokens (top-k, temperature) from the request's own generator, with
  classifier-free guidance against the negative prompt, positions from the attention mask. A request's
  image depends on its seed, never on its batch.
- ``decode_image_tokens(tokens, height, width)`` returns channels-first pixels in [-1, 1]; they become RGB
  PIL images here. Emu3 cannot edit: edit requests are unsupported.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import JsonValue
from transformers import Emu3ForConditionalGeneration, Emu3Processor

from gapeval.errors import GapevalError
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
    cache_kwarg,
    cache_of,
    chat_answers,
    checkpoint_identity,
    describe_settings,
    generators,
    load_pretrained,
    sample_rows,
    settings_from,
    to_pil,
)

#: The negative prompt of Emu3's own generation example.
NEGATIVE_PROMPT = (
    "lowres, bad anatomy, bad hands, text, error, missing fingers, extra digit, fewer digits, cropped, "
    "worst quality, low quality, normal quality, jpeg artifacts, signature, watermark, username, blurry."
)


@dataclass
class Emu3Settings(HFSettings):
    """:class:`~gapeval.models.hf.HFSettings` plus image-generation settings.

    Attributes:
        guidance_scale: Classifier-free guidance weight against the negative prompt (Emu3 uses 3).
        image_temperature: Sampling temperature of visual tokens.
        top_k: Visual tokens kept per step (Emu3 uses 2048).
        image_area: Pixels of a generated image (Emu3 uses 720 x 720).
        ratio: Aspect ratio ``W:H`` of generated images.
        negative_prompt: The unconditional prompt of guidance.
        positive_suffix: Appended to every prompt (Emu3's example adds quality words; empty by default).

    """

    guidance_scale: float = 3.0
    image_temperature: float = 1.0
    top_k: int = 2048
    image_area: int = 720 * 720
    ratio: str = "1:1"
    negative_prompt: str = NEGATIVE_PROMPT
    positive_suffix: str = ""


def _paths(arg: str) -> tuple[str, str]:
    chat, _, gen = arg.partition(",")
    return chat, gen or chat


class Emu3Model:
    """Emu3 Chat + Gen: understands and generates; cannot edit."""

    capabilities = Capabilities(understands=True, generates=True, edits=False)

    def __init__(self, arg: str, settings: Emu3Settings) -> None:
        self.settings = settings
        self.chat_path, self.gen_path = _paths(arg)
        self.batch_size = settings.batch_size
        self.name = f"emu3:{arg}"
        self._loaded: dict[str, tuple[Any, Any]] = {}

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """Both checkpoints' identities."""
        s = settings_from(Emu3Settings, arg, options, "emu3")
        chat, gen = _paths(arg)
        return {"chat": checkpoint_identity(chat, s.revision), "gen": checkpoint_identity(gen, s.revision)}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> Emu3Model:
        """Check the settings; each checkpoint loads when its direction is first asked for.

        Options: dtype, device, device_map, attn_implementation, revision, batch_size, max_new_tokens,
        temperature, guidance_scale, image_temperature, top_k, image_area, ratio, negative_prompt,
        positive_suffix.
        """
        s: Emu3Settings = settings_from(Emu3Settings, arg, options, "emu3")
        if s.top_k < 1 or s.image_area < 64:
            raise GapevalError("top_k must be >= 1 and image_area >= 64", field="--model-opt")
        return cls(arg, s)

    def _part(self, path: str) -> tuple[Any, Any]:
        if path not in self._loaded:
            loaded = load_pretrained(Emu3ForConditionalGeneration, Emu3Processor, path, self.settings, "Emu3")
            self._loaded[path] = loaded
        return self._loaded[path]

    def describe(self) -> dict[str, Any]:
        """Family, checkpoints, parameter counts (of those loaded) and decoding settings."""
        loaded = {
            role: sum(p.numel() for p in self._loaded[path][0].parameters())
            for role, path in (("chat", self.chat_path), ("gen", self.gen_path))
            if path in self._loaded
        }
        return {
            **describe_settings(self.settings),
            "family": "emu3",
            "chat_checkpoint": self.chat_path,
            "gen_checkpoint": self.gen_path,
            "parameters": loaded,
            "seed_scope": "request",
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answer with the Chat checkpoint: batched when greedy, one by one under its seed when sampling."""
        model, processor = self._part(self.chat_path)
        return [TextOutput(text=t) for t in chat_answers(model, processor, requests, self.settings)]

    @torch.inference_mode()
    def image_tokens(self, prompts: Sequence[str], seeds: Sequence[int]) -> tuple[Any, int, int]:
        """The token grid ``(B, H * (W + 1) + 3)`` for ``prompts``, row ``r`` drawn under ``seeds[r]``.

        Returns:
            The tokens (visual tokens, end-of-line, then end-of-frame, end-of-image, end-of-sequence),
            and the grid's height and width in tokens.

        """
        s = self.settings
        model, processor = self._part(self.gen_path)
        tok = processor.tokenizer
        tok.padding_side = "left"
        device = next(model.parameters()).device
        n = len(prompts)
        ask = {"return_for_image_generation": True, "image_area": s.image_area, "ratio": s.ratio}
        texts = [p + s.positive_suffix for p in prompts] + [s.negative_prompt] * n
        inputs = processor(text=texts, return_tensors="pt", padding=True, **ask)
        height, width = (int(v) for v in inputs["image_sizes"][0])
        ids = inputs["input_ids"].to(device)
        mask = inputs["attention_mask"].to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        visual = torch.tensor(model.vocabulary_mapping.image_tokens, device=device)
        eol = int(model.vocabulary_mapping.eol_token_id)
        k = min(s.top_k, len(visual))
        gens = generators(seeds, device)
        name = cache_kwarg(model)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1
        )
        steps = height * (width + 1)
        grid = torch.empty((n, steps), dtype=torch.long, device=device)
        for i in range(steps):
            if (i + 1) % (width + 1) == 0:
                nxt = torch.full((n,), eol, dtype=torch.long, device=device)
            else:
                logits = out.logits[:, -1, visual].float()
                cond, unc = logits[:n], logits[n:]
                guided = unc + s.guidance_scale * (cond - unc)
                if s.image_temperature > 0:
                    top, idx = guided.topk(k, dim=-1)
                    pick = sample_rows(torch.softmax(top / s.image_temperature, dim=-1), gens)
                    nxt = visual[idx.gather(1, pick.unsqueeze(1)).squeeze(1)]
                else:
                    nxt = visual[guided.argmax(dim=-1)]
            grid[:, i] = nxt
            if i + 1 == steps:
                break
            mask = torch.cat([mask, mask.new_ones((2 * n, 1))], dim=1)
            positions = positions[:, -1:] + 1
            out = model(
                input_ids=torch.cat([nxt, nxt]).unsqueeze(-1),
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{name: cache_of(out)},
            )
        tail = [tok.convert_tokens_to_ids(t) for t in (processor.eof_token, processor.image_end_token)]
        closing = torch.tensor([*tail, tok.eos_token_id], device=device).expand(n, 3)
        return torch.cat([grid, closing], dim=1), height, width

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """One image per request from the Gen checkpoint."""
        if any(r.input_image for r in requests):
            raise GapevalError("Emu3 cannot edit images", field="model")
        tokens, height, width = self.image_tokens([r.prompt for r in requests], [r.seed for r in requests])
        model, _ = self._part(self.gen_path)
        with torch.inference_mode():
            pixels = model.decode_image_tokens(image_tokens=tokens, height=height, width=width)
        return [ImageOutput(image=to_pil(p, channels_last=False)) for p in pixels]
