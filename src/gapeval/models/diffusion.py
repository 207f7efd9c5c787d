"""A diffusers pipeline as a generator and/or editor: ``-m diffusers:PATH_OR_HUB_ID``.

- The pipeline class is read from the checkpoint's ``model_index.json`` (``DiffusionPipeline``), or named
  with ``pipeline=CLASS`` (e.g. ``QwenImageEditPlusPipeline``, ``FluxKontextPipeline``).
- What it can do comes from the pipeline's ``__call__``: an ``image`` argument means it edits; a class
  whose name says it edits (``...Edit...``, ``...Kontext...``, ``...Img2Img...``, ``...InstructPix2Pix...``)
  needs an input image, so text-only requests are unsupported; any other pipeline draws from text.
- Seeds are per image: every call passes one CPU ``torch.Generator`` per request, seeded with that
  request's seed, so an image does not depend on the batch it was drawn in.
- Edits are batched only among input images of the same size (edit pipelines size the whole batch from
  its first image). Outputs are RGB PIL images.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from pydantic import JsonValue

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
    checkpoint_identity,
    describe_settings,
    device_of,
    generators,
    offline_hint,
    rgb,
    settings_from,
    torch_dtype,
)

_EDIT_ONLY_MARKERS = ("Edit", "Kontext", "Img2Img", "InstructPix2Pix")


@dataclass
class DiffusersSettings(HFSettings):
    """:class:`~gapeval.models.hf.HFSettings` plus sampling settings (0 or empty: the pipeline's default).

    Attributes:
        pipeline: A diffusers pipeline class name, instead of the one in ``model_index.json``.
        steps: ``num_inference_steps``.
        guidance_scale: ``guidance_scale``.
        true_cfg_scale: ``true_cfg_scale`` (Qwen-Image pipelines' classifier-free guidance).
        negative_prompt: ``negative_prompt``.
        height: Output height in pixels.
        width: Output width in pixels.
        max_sequence_length: Text-encoder token budget, where the pipeline takes one.
        cpu_offload: ``enable_model_cpu_offload()`` (large pipelines on a small GPU; needs accelerate).

    """

    batch_size: int = 4
    pipeline: str = ""
    steps: int = 0
    guidance_scale: float = 0.0
    true_cfg_scale: float = 0.0
    negative_prompt: str = ""
    height: int = 0
    width: int = 0
    max_sequence_length: int = 0
    cpu_offload: bool = False


def pipeline_capabilities(pipe: Any) -> Capabilities:
    """What a pipeline can do, from its ``__call__`` signature and its class name."""
    params = inspect.signature(pipe.__call__).parameters
    edits = "image" in params
    edit_only = edits and any(m in type(pipe).__name__ for m in _EDIT_ONLY_MARKERS)
    return Capabilities(understands=False, generates=not edit_only, edits=edits)


class DiffusersModel:
    """Text -> image and/or image + text -> image with a diffusers pipeline."""

    def __init__(self, pipe: Any, settings: DiffusersSettings, source: str) -> None:
        self.pipe, self.settings, self.source = pipe, settings, source
        self.capabilities = pipeline_capabilities(pipe)
        self.batch_size = settings.batch_size
        self.name = f"diffusers:{source}"
        self._params = set(inspect.signature(pipe.__call__).parameters)

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The checkpoint's identity."""
        s = settings_from(DiffusersSettings, arg, options, "diffusers")
        return checkpoint_identity(arg, s.revision)

    @classmethod
    def load_pipeline(cls, arg: str, settings: DiffusersSettings, dtype: Any) -> Any:
        """Load the pipeline (a subclass may override this to supply components)."""
        import diffusers

        kwargs: dict[str, Any] = {"dtype": dtype}
        if settings.revision:
            kwargs["revision"] = settings.revision
        if settings.device_map:
            kwargs["device_map"] = settings.device_map
        pipe_cls: Any = diffusers.DiffusionPipeline
        if settings.pipeline:
            pipe_cls = getattr(diffusers, settings.pipeline, None)
            if not (isinstance(pipe_cls, type) and issubclass(pipe_cls, diffusers.DiffusionPipeline)):
                raise GapevalError(
                    f"{settings.pipeline!r} is not a diffusers pipeline class", field="pipeline"
                )
        return pipe_cls.from_pretrained(arg, **kwargs)

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> DiffusersModel:
        """Load the pipeline.

        Options: dtype, device, device_map, revision, batch_size, pipeline, steps, guidance_scale,
        true_cfg_scale, negative_prompt, height, width, max_sequence_length, cpu_offload.
        """
        s: DiffusersSettings = settings_from(DiffusersSettings, arg, options, "diffusers")
        device = device_of(s)
        try:
            pipe = cls.load_pipeline(arg, s, torch_dtype(s, device))
        except (OSError, ValueError) as exc:
            raise GapevalError(
                f"cannot load diffusers pipeline: {exc}{offline_hint()}", field="model"
            ) from exc
        if s.cpu_offload:
            pipe.enable_model_cpu_offload()
        elif not s.device_map:
            pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)  # gapeval shows its own progress
        return cls(pipe, s, arg)

    def describe(self) -> dict[str, Any]:
        """Family, pipeline class, checkpoint, parameter count and sampling settings."""
        params = sum(
            p.numel()
            for c in self.pipe.components.values()
            if isinstance(c, torch.nn.Module)
            for p in c.parameters()
        )
        return {
            **describe_settings(self.settings),
            "family": "diffusers",
            "pipeline": type(self.pipe).__name__,
            "checkpoint": self.source,
            "parameters": params,
            "dtype": str(self.pipe.dtype).removeprefix("torch."),
            "device": str(self.pipe.device),
            "seed_scope": "request",
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Never called: the capabilities say a pipeline does not answer."""
        return [TextOutput(error="a diffusers pipeline does not answer questions") for _ in requests]

    def _kwargs(self) -> dict[str, Any]:
        s = self.settings
        chosen: dict[str, Any] = {
            "num_inference_steps": s.steps,
            "guidance_scale": s.guidance_scale,
            "true_cfg_scale": s.true_cfg_scale,
            "height": s.height,
            "width": s.width,
            "max_sequence_length": s.max_sequence_length,
        }
        kwargs = {k: v for k, v in chosen.items() if v and k in self._params}
        if s.negative_prompt and "negative_prompt" in self._params:
            kwargs["negative_prompt"] = s.negative_prompt
        return kwargs

    def _call(
        self, batch: Sequence[GenerateRequest], inputs: Sequence[Image.Image] | None
    ) -> list[ImageOutput]:
        kwargs = self._kwargs()
        if "negative_prompt" in kwargs:
            kwargs["negative_prompt"] = [kwargs["negative_prompt"]] * len(batch)
        if inputs is not None:
            kwargs["image"] = list(inputs)
        with torch.inference_mode():
            out = self.pipe(
                prompt=[r.prompt for r in batch],
                generator=generators([r.seed for r in batch], "cpu"),
                output_type="pil",
                **kwargs,
            )
        images = list(out.images)
        if len(images) != len(batch):
            raise RuntimeError(f"pipeline returned {len(images)} images for {len(batch)} prompts")
        return [ImageOutput(image=img.convert("RGB")) for img in images]

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """One image per request: text-to-image ones in one call, edits in one call per input size."""
        results: dict[int, ImageOutput] = {}
        inputs = {i: rgb(r.input_image) for i, r in enumerate(requests) if r.input_image}
        groups: dict[tuple[int, int] | None, list[int]] = defaultdict(list)
        for i in range(len(requests)):
            groups[inputs[i].size if i in inputs else None].append(i)
        for size, idx in groups.items():
            given = [inputs[i] for i in idx] if size is not None else None
            outs = self._call([requests[i] for i in idx], given)
            results.update(zip(idx, outs, strict=True))
        return [results[i] for i in range(len(requests))]
