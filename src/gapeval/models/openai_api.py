"""A model behind an OpenAI-compatible API: ``-m openai:MODEL`` (hosted APIs, OpenRouter, vLLM, vllm-omni).

- Understanding: chat completions, with the question's images as data URLs.
- Generation and editing: the images API (``/images/generations``; ``/images/edits``, multipart), or, with
  ``generation=chat``, chat completions that return images (``modalities: ["image", "text"]``).
- Three reply shapes carry images and all parse: ``data[].b64_json`` (the images API, vllm-omni),
  ``choices[0].message.content[].image_url`` (vllm-omni chat) and ``choices[0].message.images[].image_url``
  (OpenRouter / Gemini image models).
- Concurrency, retries, ``Retry-After``, the attempt cap and failure-as-status are the judge's, from the one
  client layer (:mod:`gapeval.openai_client`). A request that fails after the cap fails alone.
- The key is read from ``api_key_env`` (default ``OPENAI_API_KEY``) and never written anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import JsonValue

from gapeval.errors import GapevalError
from gapeval.images import max_pixels
from gapeval.models.base import (
    Capabilities,
    GenerateRequest,
    ImageOutput,
    ModelContext,
    TextOutput,
    UnderstandRequest,
)
from gapeval.openai_client import (
    ApiClient,
    ApiSettings,
    ApiUsage,
    Retryable,
    api_key,
    chat_message,
    chat_text,
    check_endpoint,
)
from gapeval.options import set_options

_DATA_URL_PREFIX = "data:"


@dataclass
class OpenAIModelSettings(ApiSettings):
    """How the model is reached and asked (every field is a ``--model-opt``)."""

    model: str = ""
    generation: str = "images"
    size: str = "1024x1024"
    temperature: float | None = None
    max_tokens: int | None = None
    send_seed: bool = True
    batch_size: int = 1
    concurrency: int = 16


def _settings(arg: str, options: dict[str, str]) -> OpenAIModelSettings:
    if not arg:
        raise GapevalError("name the model: openai:MODEL (e.g. openai:gpt-image-1)", field="model")
    s = OpenAIModelSettings(model=arg)
    set_options(s, options, "--model-opt", fixed=("model",))
    if s.generation not in ("images", "chat"):
        raise GapevalError("generation must be images or chat", field="generation")
    if min(s.concurrency, s.max_attempts, s.batch_size) < 1:
        raise GapevalError("concurrency, max_attempts and batch_size must be at least 1", field="--model-opt")
    return s


def data_url(path: str) -> str:
    """An image file as a data URL (its own bytes for PNG and JPEG, else converted to PNG)."""
    data = Path(path).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        mime = "image/png"
    elif data[:3] == b"\xff\xd8\xff":
        mime = "image/jpeg"
    else:
        with Image.open(io.BytesIO(data)) as img:
            buf = io.BytesIO()
            img.convert("RGB").save(buf, format="PNG")
        data, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _decode(b64_or_url: str) -> Image.Image:
    b64 = b64_or_url.split(",", 1)[1] if b64_or_url.startswith(_DATA_URL_PREFIX) else b64_or_url
    try:
        img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        if img.width * img.height > max_pixels():
            raise Retryable(f"image is {img.width}x{img.height}, over the size cap")
        img.load()
    except Retryable:
        raise
    except Exception as exc:
        raise Retryable(f"image in the reply is not decodable ({exc.__class__.__name__})") from exc
    return img.convert("RGB")


def image_in(reply: Any) -> Image.Image:
    """The first image of a reply in any of the three shapes, or Retryable naming what is there instead."""
    if isinstance(reply, dict) and isinstance(reply.get("data"), list):
        for entry in reply["data"]:
            if isinstance(entry, dict) and isinstance(entry.get("b64_json"), str):
                return _decode(entry["b64_json"])
            if isinstance(entry, dict) and str(entry.get("url", "")).startswith(_DATA_URL_PREFIX):
                return _decode(str(entry["url"]))
        raise Retryable("images reply holds no b64_json image")
    message = chat_message(reply)
    candidates: list[Any] = []
    content = message.get("content")
    if isinstance(content, list):
        candidates += [p for p in content if isinstance(p, dict) and p.get("type") == "image_url"]
    if isinstance(message.get("images"), list):
        candidates += [p for p in message["images"] if isinstance(p, dict)]
    for part in candidates:
        url = part.get("image_url")
        url = url.get("url") if isinstance(url, dict) else url
        if isinstance(url, str) and url.startswith(_DATA_URL_PREFIX):
            return _decode(url)
    raise Retryable("reply holds no image (no data[].b64_json, content[].image_url or images[])")


class OpenAIModel:
    """Understanding and generation through an OpenAI-compatible endpoint."""

    capabilities = Capabilities(understands=True, generates=True, edits=True)

    def __init__(self, settings: OpenAIModelSettings) -> None:
        self.settings = settings
        self.name = f"openai:{settings.model}"
        self.batch_size = settings.batch_size
        # I/O-bound: the executor keeps enough calls in flight for ``concurrency`` requests, and commits
        # each call's replies as they land (with batch_size 1, every reply on its own).
        self.parallel_calls = max(1, -(-settings.concurrency // settings.batch_size))
        self.usage = ApiUsage()
        self._loop_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: ApiClient | None = None
        ApiClient.client_class()

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The model name, the endpoint and how images are asked for (no request is made)."""
        s = _settings(arg, options)
        api_key(s)  # a missing key is one line before the run starts
        return {"model": s.model, "endpoint": s.endpoint(), "generation": s.generation, "size": s.size}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> OpenAIModel:
        """``openai:MODEL``.

        Options: base_url, api_key_env, generation (images or chat), size, temperature, max_tokens,
        send_seed, concurrency, batch_size, max_attempts, timeout_s, backoff_s, max_retry_after_s.
        """
        model = cls(_settings(arg, options))
        check_endpoint(model.settings)  # a wrong address or key is one line now, not minutes of retries
        return model

    def describe(self) -> dict[str, Any]:
        """Recorded in the manifest (never the key)."""
        s = self.settings
        return {
            "family": "openai",
            "model": s.model,
            "endpoint": s.endpoint(),
            "generation": s.generation,
            "size": s.size,
            "temperature": s.temperature,
            "concurrency": s.concurrency,
        }

    # -- requests ------------------------------------------------------------------------------------
    def _chat_body(self, content: list[dict[str, Any]], seed: int) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {"model": s.model, "messages": [{"role": "user", "content": content}]}
        if s.temperature is not None:
            body["temperature"] = s.temperature
        if s.max_tokens:
            body["max_completion_tokens"] = s.max_tokens
        if s.send_seed:
            body["seed"] = seed
        return body

    async def _answer(self, client: ApiClient, r: UnderstandRequest) -> TextOutput:
        content = [{"type": "text", "text": r.prompt}] + [
            {"type": "image_url", "image_url": {"url": data_url(p)}} for p in r.images
        ]
        body = self._chat_body(content, r.seed)

        def read(reply: Any) -> str:
            text = chat_text(reply)
            self.usage.count(reply)
            return text

        text = await client.call(lambda c: c.post("/chat/completions", body=body, cast_to=dict), read)
        return TextOutput(text=text)

    async def _draw(self, client: ApiClient, r: GenerateRequest) -> ImageOutput:
        s = self.settings
        if s.generation == "chat":
            content: list[dict[str, Any]] = [{"type": "text", "text": r.prompt}]
            if r.input_image:
                content.append({"type": "image_url", "image_url": {"url": data_url(r.input_image)}})
            body = {**self._chat_body(content, r.seed), "modalities": ["image", "text"]}
            image = await client.call(
                lambda c: c.post("/chat/completions", body=body, cast_to=dict), image_in
            )
        elif r.input_image:
            data = Path(r.input_image).read_bytes()
            form = {"model": s.model, "prompt": r.prompt, "size": s.size, "n": 1}

            async def edit(c: Any) -> Any:
                reply = await c.images.edit(image=("input.png", data, "image/png"), **form)
                return reply.model_dump() if hasattr(reply, "model_dump") else reply

            image = await client.call(edit, image_in)
        else:
            gen = {
                "model": s.model,
                "prompt": r.prompt,
                "size": s.size,
                "n": 1,
                "response_format": "b64_json",
            }
            if s.send_seed:
                gen["seed"] = r.seed
            image = await client.call(
                lambda c: c.post("/images/generations", body=gen, cast_to=dict), image_in
            )
        return ImageOutput(image=image, meta={"endpoint": s.endpoint()})

    def _client_on_loop(self) -> tuple[asyncio.AbstractEventLoop, ApiClient]:
        # One event loop and one connection pool for the model's life (a thread of its own): batches
        # then reuse connections instead of paying a client and TLS set-up each, and a caller's own
        # running loop (a notebook) is never involved.
        with self._loop_lock:  # the executor calls from several threads at once
            if self._loop is None or self._client is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="gapeval-openai-model", daemon=True).start()

                async def make() -> ApiClient:
                    return ApiClient(self.settings, self.usage)

                self._client = asyncio.run_coroutine_threadsafe(make(), loop).result()
                self._loop = loop
            return self._loop, self._client

    def _run(self, n: int, one: Callable[[ApiClient, int], Any], fail: Callable[[str], Any]) -> list[Any]:
        loop, client = self._client_on_loop()

        async def batch() -> list[Any]:
            sem = asyncio.Semaphore(self.settings.concurrency)
            start = time.perf_counter()

            async def each(i: int) -> Any:
                async with sem:
                    try:
                        return await one(client, i)
                    except Retryable as exc:
                        self.usage.failures += 1
                        return fail(str(exc))

            try:
                return list(await asyncio.gather(*(each(i) for i in range(n))))
            finally:
                self.usage.wall_s += time.perf_counter() - start

        return asyncio.run_coroutine_threadsafe(batch(), loop).result()

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answers, concurrently; a request that fails after the retries fails alone."""
        return self._run(
            len(requests), lambda c, i: self._answer(c, requests[i]), lambda e: TextOutput(error=e)
        )

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Images (edits when an input image is given), concurrently."""
        return self._run(
            len(requests), lambda c, i: self._draw(c, requests[i]), lambda e: ImageOutput(error=e)
        )
