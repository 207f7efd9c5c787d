"""A model served over the gapeval model-server protocol: ``-m http://HOST:PORT``.

The server may be ``gapeval serve`` (any adapter, in another process or on another machine) or the
standalone template (``gapeval/serve/template_server.py``: the standard library and Pillow, no gapeval),
which wraps a model that needs its own environment. A call that cannot reach the server fails the
requests of that call (recorded, retried by the next run of the same spec); the run goes on.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import urllib.error
import urllib.parse
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
from gapeval.models.server_protocol import PROTOCOL, TOKEN_ENV, VERSION, file_b64, image_of

OPTIONS = ("timeout_s", "batch_size", "token_env")
#: Largest reply read from a server (a batch of 64 images of 1024 px is about 250 MB of base64).
MAX_REPLY = 1 << 30
#: Most requests per call a server may ask for.
MAX_BATCH = 4096


def _call(url: str, body: dict[str, Any] | None, timeout: float, token: str | None = None) -> Any:
    """One JSON call, bounded in time as a whole (not per socket operation) and in reply size.

    A server that drips its reply, or never ends it, is cut off at ``timeout`` seconds after the call
    began; a reply over :data:`MAX_REPLY` bytes is refused as it arrives.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http://HOST:PORT address: {url!r}")
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    # The watchdog closes the socket at the deadline, so that a blocked read returns whatever it is at.
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        if conn.sock is not None:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(timeout, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        conn.request("GET" if data is None else "POST", parts.path or "/", body=data, headers=headers)
        resp = conn.getresponse()
        chunks, size = [], 0
        while block := resp.read1(1 << 20):
            size += len(block)
            if size > MAX_REPLY:
                raise ValueError(f"reply larger than {MAX_REPLY} bytes; refused")
            chunks.append(block)
        if expired.is_set():
            raise TimeoutError(f"no whole reply within {timeout:.0f} s")
        payload = b"".join(chunks)
        if resp.status != 200:
            try:
                detail = json.loads(payload).get("error", "")
            except (ValueError, AttributeError):
                detail = ""
            raise urllib.error.HTTPError(url, resp.status, str(detail), resp.headers, None)
        return json.loads(payload)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no whole reply within {timeout:.0f} s") from exc
        raise
    finally:
        watchdog.cancel()
        conn.close()


def _health_field(url: str, health: dict[str, Any], key: str, kind: type, check: Any = None) -> Any:
    value = health.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool) != (kind is bool)
        or not isinstance(value, kind)
        or (check and not check(value))
    ):
        raise GapevalError(f"the server's health reply has an unusable {key}: {str(value)[:80]!r}",
                           file=url, field=f"health.{key}")  # fmt: skip
    return value


class RemoteModel:
    """The client side of the model-server protocol."""

    #: The spec's argument says where the model is served, not what it is: a run resumes on the same
    #: server at another address when the server's identity of its model is unchanged.
    relocatable = True

    def __init__(
        self, url: str, health: dict[str, Any], timeout_s: float, batch_size: int | None, token: str | None
    ) -> None:
        self.url = url
        self.health = health
        self.timeout_s = timeout_s
        self.token = token
        caps = health.get("capabilities") or {}
        self.capabilities = Capabilities(
            understands=bool(caps.get("understands", True)),
            generates=bool(caps.get("generates", True)),
            edits=bool(caps.get("edits", True)),
        )
        self.batch_size = batch_size or int(health.get("batch_size") or 8)
        self.name = str(health.get("name") or url)

    @staticmethod
    def _settings(arg: str, options: dict[str, str]) -> tuple[str, float, int | None, str | None]:
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
        if not 0 < timeout <= 86_400 or (batch is not None and not 1 <= batch <= MAX_BATCH):
            raise GapevalError(f"timeout_s must lie in (0, 86400] and batch_size in [1, {MAX_BATCH}]",
                               field="--model-opt")  # fmt: skip
        token = os.environ.get(options.get("token_env", TOKEN_ENV)) or None
        return "http:" + arg.rstrip("/"), timeout, batch, token

    @classmethod
    def _health(cls, url: str, timeout: float, token: str | None) -> dict[str, Any]:
        try:
            health = _call(f"{url}/v1/health", None, min(timeout, 30.0), token)
        except urllib.error.HTTPError as exc:
            hint = f"; set {TOKEN_ENV} (or token_env=VAR) to the server's token" if exc.code == 401 else ""
            raise GapevalError(
                f"the model server at {url} answered HTTP {exc.code}{hint}", field="model"
            ) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            raise GapevalError(f"cannot reach the model server at {url} ({exc})", field="model") from exc
        if not isinstance(health, dict) or health.get("protocol") != PROTOCOL:
            raise GapevalError(f"{url} does not speak the gapeval model-server protocol", field="model")
        if health.get("version") != VERSION:
            raise GapevalError(
                f"{url} speaks protocol version {health.get('version')!r}; this gapeval speaks {VERSION}",
                field="model",
            )
        _health_field(url, health, "batch_size", int, lambda n: 1 <= n <= MAX_BATCH)
        _health_field(url, health, "name", str)
        _health_field(url, health, "identity", dict)
        _health_field(url, health, "description", dict)
        caps = _health_field(url, health, "capabilities", dict) or {}
        for key in ("understands", "generates", "edits"):
            _health_field(url, caps, key, bool)
        return health

    @classmethod
    def identify(cls, arg: str, options: dict[str, str], context: ModelContext) -> dict[str, JsonValue]:
        """The server's own identity of its model (not its address); one cheap health call."""
        url, timeout, _, token = cls._settings(arg, options)
        health = cls._health(url, timeout, token)
        identity = health.get("identity")
        return {"name": str(health.get("name")), "identity": identity if isinstance(identity, dict) else {}}

    @classmethod
    def from_spec(cls, arg: str, options: dict[str, str], context: ModelContext) -> RemoteModel:
        """``http://HOST:PORT`` (the family is ``http``; the argument is ``//HOST:PORT``)."""
        url, timeout, batch, token = cls._settings(arg, options)
        return cls(url, cls._health(url, timeout, token), timeout, batch, token)

    def describe(self) -> dict[str, Any]:
        """The server's description of its model."""
        return {"family": "remote", "server": self.url, "remote": self.health.get("description") or {}}

    def _post(self, path: str, requests: list[dict[str, Any]]) -> list[Any]:
        try:
            reply = _call(f"{self.url}{path}", {"requests": requests}, self.timeout_s, self.token)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"model server answered HTTP {exc.code} {exc.msg}".strip()) from exc
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
