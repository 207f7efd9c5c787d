"""What the Hugging Face adapters (``janus``, ``emu3``, ``vlm``, ``diffusers``) share.

Settings every one of them takes (dtype, device, attention implementation, batch size, token budget), the
identity of a checkpoint without loading it, per-request random generators, and one conversion from a
decoded image tensor (either layout, values in [-1, 1]) to an RGB PIL image. torch is imported here, so
only these adapters need the ``torch`` extra.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
from PIL import Image
from pydantic import JsonValue

from gapeval.errors import GapevalError
from gapeval.models.base import TextOutput, UnderstandRequest, file_identity
from gapeval.options import set_options

# Files whose bytes decide what a local checkpoint computes (weights, configs, tokenizer).
_IDENTITY_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".jinja")


@dataclass
class HFSettings:
    """Options every Hugging Face adapter takes (each is a ``--model-opt KEY=VALUE``).

    Attributes:
        dtype: ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``bfloat16`` or ``float16``.
        device: ``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``; unused with a device map.
        device_map: For ``from_pretrained`` (``auto`` spreads a large model over GPUs; needs accelerate).
        attn_implementation: ``sdpa``, ``eager``, ``flash_attention_2``...; empty for the library default.
        revision: A hub revision (branch, tag or commit) to load and record.
        batch_size: Requests per call.
        max_new_tokens: Token budget of an understanding answer.
        temperature: Sampling temperature of answers; 0 decodes greedily.
        adapter: A peft adapter folder (LoRA, e.g. from ``gapeval knowledge``) merged into the weights
            after loading; its files are part of the run's model identity.

    """

    dtype: str = "auto"
    device: str = "auto"
    device_map: str = ""
    attn_implementation: str = ""
    revision: str = ""
    batch_size: int = 8
    max_new_tokens: int = 64
    temperature: float = 0.0
    adapter: str = ""


def settings_from(cls: type[Any], arg: str, options: dict[str, str], family: str) -> Any:
    """Parse ``options`` into ``cls`` (a dataclass of :class:`HFSettings`' fields and more).

    Raises:
        GapevalError: No checkpoint named, an unknown option, or a value out of range.

    """
    if not arg:
        raise GapevalError(f"name the checkpoint: {family}:PATH_OR_HUB_ID", field="model")
    settings = cls()
    set_options(settings, options, "--model-opt")
    if settings.dtype not in ("auto", "float32", "bfloat16", "float16"):
        raise GapevalError("dtype must be auto, float32, bfloat16 or float16", field="dtype")
    if settings.adapter and family not in ("janus", "vlm"):
        raise GapevalError(f"the {family} adapter takes no peft adapter (janus and vlm do)", field="adapter")
    if settings.batch_size < 1 or settings.max_new_tokens < 1 or settings.temperature < 0:
        raise GapevalError(
            "batch_size and max_new_tokens must be >= 1, temperature >= 0", field="--model-opt"
        )
    return settings


def device_of(settings: HFSettings) -> str:
    """The device to load onto."""
    import torch

    if settings.device != "auto":
        return settings.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_dtype(settings: HFSettings, device: str) -> Any:
    """The torch dtype the settings ask for on ``device``."""
    import torch

    if settings.dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, settings.dtype)


def load_kwargs(settings: HFSettings, device: str) -> dict[str, Any]:
    """Keyword arguments for ``from_pretrained`` (dtype, device map, attention, revision)."""
    kwargs: dict[str, Any] = {"dtype": torch_dtype(settings, device)}
    if settings.device_map:
        kwargs["device_map"] = settings.device_map
    if settings.attn_implementation:
        kwargs["attn_implementation"] = settings.attn_implementation
    if settings.revision:
        kwargs["revision"] = settings.revision
    return kwargs


def load_pretrained(
    model_cls: Any, processor_cls: Any, path: str, settings: HFSettings, family: str
) -> tuple[Any, Any]:
    """A model (in eval mode, on the settings' device unless a device map places it) and its processor.

    Raises:
        GapevalError: The checkpoint cannot be loaded (one line, with the library's reason).

    """
    device = device_of(settings)
    try:
        model = model_cls.from_pretrained(path, **load_kwargs(settings, device))
        processor = processor_cls.from_pretrained(path, revision=settings.revision or None)
    except (OSError, ValueError) as exc:
        raise GapevalError(f"cannot load {family} checkpoint: {exc}{offline_hint()}", field="model") from exc
    if settings.adapter:
        model = merge_adapter(model, settings.adapter)
    if not settings.device_map:
        model = model.to(device)
    return model.eval(), processor


def merge_adapter(model: Any, adapter: str) -> Any:
    """``model`` with the peft adapter in folder ``adapter`` merged into its weights.

    Raises:
        GapevalError: peft is missing, or the folder holds no adapter for this model.

    """
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise GapevalError(
            "adapters need peft: pip install 'gapeval[transformers]'", field="adapter"
        ) from exc
    folder = Path(adapter)
    if not (folder / "adapter_config.json").is_file():
        raise GapevalError("no adapter_config.json in the adapter folder", file=folder, field="adapter")
    try:
        return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise GapevalError(f"cannot apply the adapter: {exc}", file=folder, field="adapter") from exc


def looks_like_path(text: str) -> bool:
    """Whether a model argument can only be a local path (a hub id is ``NAME`` or ``ORG/NAME``)."""
    return (
        text.startswith(("/", "./", "../", "~", "."))
        or text.count("/") > 1
        or text.endswith("/")
        or "\\" in text
    )


def checkpoint_identity(path_or_id: str, revision: str = "") -> dict[str, JsonValue]:
    """What identifies a checkpoint without loading it.

    A local folder: a digest over its files' identities (SHA-256 of small files, size and mtime of large
    ones). A hub id: the id and the requested revision (a commit hash pins it; a branch does not).
    """
    path = Path(path_or_id)
    if not path.exists():
        if looks_like_path(path_or_id):
            raise GapevalError("no such folder (nor a hub id: those are NAME or ORG/NAME)", file=path,
                               field="model")  # fmt: skip
        return {"hub_id": path_or_id, "revision": revision or "main"}
    if path.is_file():
        return {"checkpoint": str(path.resolve()), **file_identity(path)}
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and p.suffix in _IDENTITY_SUFFIXES and ".cache" not in p.parts
    )
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(path)}\0{file_identity(f)}\0".encode())
    return {"checkpoint": str(path.resolve()), "files": len(files), "digest": digest.hexdigest()}


def offline_hint() -> str:
    """A suffix for load errors when the hub is switched off."""
    return (
        " (HF_HUB_OFFLINE is set: only local folders and cached ids load)"
        if os.environ.get("HF_HUB_OFFLINE")
        else ""
    )


def cache_kwarg(module: Any) -> str:
    """The name a model's ``forward`` gives its KV cache (``cache`` in recent transformers 5.x)."""
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_of(outputs: Any) -> Any:
    """The KV cache a forward pass returned, under either name."""
    return getattr(outputs, "cache", None) or outputs.past_key_values


def generators(seeds: Sequence[int], device: Any) -> list[Any]:
    """One seeded ``torch.Generator`` per request, on ``device``: a request's draws follow its own seed."""
    import torch

    return [torch.Generator(device=device).manual_seed(int(s)) for s in seeds]


def sample_rows(probs: Any, gens: Sequence[Any]) -> Any:
    """Draw one index per row of ``probs`` (B, V), row ``r`` from ``gens[r]`` alone."""
    import torch

    return torch.cat([torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(gens)])


def to_pil(pixels: Any, channels_last: bool) -> Image.Image:
    """One decoded image tensor, values in [-1, 1], as an RGB PIL image.

    Args:
        pixels: ``(H, W, C)`` when ``channels_last`` else ``(C, H, W)``.
        channels_last: The layout the library decodes to (Janus: channels last; Emu3, diffusers VAEs: first).

    """
    arr = pixels.detach().float().cpu().numpy()
    if not channels_last:
        arr = np.transpose(arr, (1, 2, 0))
    arr = np.clip((arr + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"decoded image has shape {arr.shape}, not (H, W, C)")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return Image.fromarray(arr[:, :, :3], mode="RGB")


def rgb(path: str) -> Image.Image:
    """An input image file, loaded and converted to RGB."""
    with Image.open(path) as img:
        return img.convert("RGB")


def chat_prompt(processor: Any, prompt: str, n_images: int) -> str:
    """One user turn (``n_images`` image placeholders, then the question) through the chat template."""
    content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
    content.append({"type": "text", "text": prompt})
    text: str = processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True
    )
    return text


def chat_answers(
    model: Any, processor: Any, requests: Sequence[UnderstandRequest], settings: HFSettings
) -> list[str]:
    """Answers from an image-text-to-text model through its processor and ``generate``.

    Greedy decoding answers the whole batch at once (left padded). With ``temperature > 0`` each request
    is sampled alone after seeding with its own seed: ``generate`` draws from one global RNG, so a batch
    would make an answer depend on its neighbours.
    """
    import torch

    processor.tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge
    pad = processor.tokenizer.pad_token_id
    if pad is None:
        pad = processor.tokenizer.eos_token_id
    device = next(model.parameters()).device

    def run(batch: Sequence[UnderstandRequest], seed: int | None) -> list[str]:
        images = [rgb(p) for r in batch for p in r.images]
        inputs = processor(
            text=[chat_prompt(processor, r.prompt, len(r.images)) for r in batch],
            images=images or None,
            return_tensors="pt",
            padding=True,
        ).to(device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=settings.max_new_tokens,
                do_sample=seed is not None,
                temperature=settings.temperature if seed is not None else None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
            )
        texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        return [str(t).strip() for t in texts]

    if settings.temperature > 0:
        return [run([r], r.seed)[0] for r in requests]
    return run(requests, None)


def describe_settings(settings: Any) -> dict[str, Any]:
    """The settings as a JSON-able dict for the manifest."""
    return dataclasses.asdict(settings)


class ChatModel:
    """A transformers checkpoint that answers through its processor's chat template.

    Subclasses name the family, the settings class and the two classes ``from_pretrained`` loads; the
    ``vlm`` adapter is this class as is, ``janus`` adds image generation.
    """

    family: ClassVar[str] = ""
    settings_class: ClassVar[type[HFSettings]] = HFSettings
    model_class: ClassVar[Any] = None
    processor_class: ClassVar[Any] = None

    def __init__(self, model: Any, processor: Any, settings: HFSettings, source: str) -> None:
        self.model, self.processor, self.settings, self.source = model, processor, settings, source
        self.batch_size = settings.batch_size
        self.name = f"{self.family}:{source}"
        self.device = next(model.parameters()).device

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: Any) -> dict[str, JsonValue]:
        """The checkpoint's identity (file digests for a folder; id and revision for the hub)."""
        s = settings_from(cls.settings_class, arg, options, cls.family)
        identity = checkpoint_identity(arg, s.revision)
        if s.adapter:
            identity["peft_adapter"] = checkpoint_identity(s.adapter)
        return identity

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: Any) -> Self:
        """Load the checkpoint and its processor (options: the settings class's fields)."""
        s = settings_from(cls.settings_class, arg, options, cls.family)
        model, processor = load_pretrained(cls.model_class, cls.processor_class, arg, s, cls.family)
        return cls(model, processor, s, arg)

    def describe(self) -> dict[str, Any]:
        """Family, model class, checkpoint, parameter count and decoding settings."""
        return {
            **describe_settings(self.settings),
            "family": self.family,
            "class": type(self.model).__name__,
            "checkpoint": self.source,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "dtype": str(self.model.dtype).removeprefix("torch."),
            "device": str(self.device),
            "seed_scope": "request",
        }

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answer each request: batched when greedy, one by one under its seed when sampling."""
        return [TextOutput(text=t) for t in chat_answers(self.model, self.processor, requests, self.settings)]
