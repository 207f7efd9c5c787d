"""A model served over the gapeval model-server protocol: ``-m http://HOST:PORT``.

The server may be ``gapeval serve`` (any adapter, in another process or on another machine) or the
standalone template (``gapeval/serve/template_server.py``: the standard library and Pillow, no gapeval),
which wraps a model that needs its own environment. A call that cannot reach the server fails the
requests of that call (recorded, retried by the next run of the same spec); the run goes on.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

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
from gapeval.models.server_protocol import PROTOCOL, VERSION, file_b64, image_of

OPTIONS = ("timeout_s", "batch_size")


def _call(url: str, body: dict[str, Any] | None, timeout: float) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


class RemoteModel:
    """The client side of the model-server protocol."""

    def __init__(self, url: str, health: dict[str, Any], timeout_s: float, batch_size: int | None) -> None:
        self.url = url
        self.health = health
        self.timeout_s = timeout_s
        caps = health.get("capabilities") or {}
        self.capabilities = Capabilities(
            understands=bool(caps.get("understands", True)),
            generates=bool(caps.get("generates", True)),
            edits=bool(caps.get("edits", True)),
        )
        self.batch_size = batch_size or int(health.get("batch_size") or 8)
        self.name = str(health.get("name") or url)

    @staticmethod
    def _settings(arg: str, options: dict[str, str]) -> tuple[str, float, int | None]:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise GapevalError(
                f"unknown option {unknown[0]!r}; known: {', '.join(OPTIONS)}", field="--model-opt"
            )
        try:
            timeout = float(options.get("timeout_s", "600"))
            batch = int(options["batch_size"]) if "batch_size" in options else None
        except ValueError as exc:
            raise GapevalError("timeout_s and batch_size must be numbers", field="--model-opt") from exc
        return "http:" + arg.rstrip("/"), timeout, batch

    @classmethod
    def _health(cls, url: str, timeout: float) -> dict[str, Any]:
        try:
            health = _call(f"{url}/v1/health", None, min(timeout, 30.0))
        except (OSError, ValueError) as exc:
            raise GapevalError(f"cannot reach the model server at {url} ({exc})", field="model") from exc
        if not isinstance(health, dict) or health.get("protocol") != PROTOCOL:
            raise GapevalError(f"{url} does not speak the gapeval model-server protocol", field="model")
        if health.get("version") != VERSION:
            raise GapevalError(
                f"{url} speaks protocol version {health.get('version')!r}; this gapeval speaks {VERSION}",
                field="model",
            )
        return health

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The server's own identity of its model (and its address); one cheap health call."""
        url, timeout, _ = cls._settings(arg, options)
        health = cls._health(url, timeout)
        identity = health.get("identity")
        return {
            "server": url,
            "name": str(health.get("name")),
            "identity": identity if isinstance(identity, dict) else {},
        }

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> RemoteModel:
        """``http://HOST:PORT`` (the family is ``http``; the argument is ``//HOST:PORT``)."""
        url, timeout, batch = cls._settings(arg, options)
        return cls(url, cls._health(url, timeout), timeout, batch)

    def describe(self) -> dict[str, Any]:
        """The server's description of its model."""
        return {"family": "remote", "server": self.url, "remote": self.health.get("description") or {}}

    def _post(self, path: str, requests: list[dict[str, Any]]) -> list[Any]:
        try:
            reply = _call(f"{self.url}{path}", {"requests": requests}, self.timeout_s)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read()).get("error", "")
            except (ValueError, AttributeError, OSError):
                detail = ""
            raise RuntimeError(f"model server answered HTTP {exc.code} {detail}".strip()) from exc
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # unreachable, killed mid-call, or an unreadable reply: these requests fail, the run goes on
            raise RuntimeError(f"model server at {self.url} failed ({type(exc).__name__}: {exc})") from exc
        outputs = reply.get("outputs") if isinstance(reply, dict) else None
        if not isinstance(outputs, list) or len(outputs) != len(requests):
            raise RuntimeError("model server returned no output list of the right length")
        return outputs

    def understand(self, requests: Sequence[UnderstandRequest]) -> list[TextOutput]:
        """Answers from the server, one per request."""
        body = [
            {"item_id": r.item_id, "prompt": r.prompt, "images": [file_b64(p) for p in r.images],
             "seed": r.seed, "sample": r.sample}
            for r in requests
        ]  # fmt: skip
        out: list[TextOutput] = []
        for o in self._post("/v1/understand", body):
            o = o if isinstance(o, dict) else {"error": "not an object"}
            text = o.get("text")
            meta = o.get("meta") if isinstance(o.get("meta"), dict) else {}
            if o.get("error") is not None or not isinstance(text, str):
                out.append(TextOutput(error=str(o.get("error") or "no text returned"), meta=meta))
            else:
                out.append(TextOutput(text=text, meta=meta))
        return out

    def generate(self, requests: Sequence[GenerateRequest]) -> list[ImageOutput]:
        """Images from the server, one per request."""
        body = [
            {"item_id": r.item_id, "prompt": r.prompt, "seed": r.seed, "sample": r.sample,
             "input_image": file_b64(r.input_image) if r.input_image else None}
            for r in requests
        ]  # fmt: skip
        out: list[ImageOutput] = []
        for o in self._post("/v1/generate", body):
            o = o if isinstance(o, dict) else {"error": "not an object"}
            meta = o.get("meta") if isinstance(o.get("meta"), dict) else {}
            if o.get("error") is not None or not isinstance(o.get("image"), str):
                out.append(ImageOutput(error=str(o.get("error") or "no image returned"), meta=meta))
                continue
            try:
                out.append(ImageOutput(image=image_of(o["image"], max_pixels()), meta=meta))
            except (ValueError, OSError) as exc:
                out.append(ImageOutput(error=f"unusable image from the server ({exc})", meta=meta))
        return out
