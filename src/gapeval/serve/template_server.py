#!/usr/bin/env python3
"""A gapeval model server in one file: the standard library and Pillow, no gapeval.

Copy this file into the environment your model needs (its own Python, torch and CUDA pins), fill in
``load_model``, ``understand`` and ``generate``, and run it::

    python template_server.py --port 8900

then evaluate it from gapeval's environment, on any machine that reaches it::

    gapeval run shapes-v1 -m http://HOST:8900

It speaks the gapeval model-server protocol, version 1 (``docs/model-server.md``). As shipped it
answers every question with "I do not know." and draws a white canvas, so it runs as it is.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hmac
import io
import ipaddress
import json
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

# ---- fill these in ------------------------------------------------------------------------------------

#: What the model is (recorded in every run made with it) and what it can do.
NAME = "my-model"
CAPABILITIES = {"understands": True, "generates": True, "edits": True}
BATCH_SIZE = 4
#: What identifies the weights cheaply (a checkpoint hash, a hub revision): a resume must match it.
IDENTITY: dict[str, Any] = {"weights": "none"}


def load_model() -> Any:
    """Load the model once, at start-up (e.g. the authors' own ``load_model(...)`` call)."""
    return None


def understand(model: Any, batch: list[dict[str, Any]]) -> list[str]:
    """One answer per request. Each request has ``prompt``, ``images`` (PIL RGB images) and ``seed``.

    Raise to fail the whole batch; return one string per request, in order.
    """
    return ["I do not know." for _ in batch]


def generate(model: Any, batch: list[dict[str, Any]]) -> list[Image.Image]:
    """One image per request.

    Each request has ``prompt``, ``input_image`` (PIL RGB, or None: draw from text) and ``seed`` (seed
    your sampler from it, per request: never from the batch).
    """
    return [Image.new("RGB", (512, 512), "white") for _ in batch]


# ---- the protocol (no need to change anything below) --------------------------------------------------

PROTOCOL, VERSION = "gapeval-model-server", 1
MAX_PIXELS = 50_000_000
MAX_BODY = 512 * 2**20
#: A connection that sends nothing for this long is closed; a request body must arrive within BODY_S.
IDLE_S, BODY_S = 60.0, 600.0
#: Requests in one call (a client sends at most its batch size).
MAX_REQUESTS = 4096
#: Connections served at once; more are answered 503 at once (each holds a thread while it lasts).
MAX_CONNECTIONS = 32
#: Clients send this token as ``Authorization: Bearer TOKEN``; a server off the loopback requires one.
TOKEN_ENV = "GAPEVAL_SERVE_TOKEN"


def _decode(b64: str) -> Image.Image:
    if not isinstance(b64, str):
        raise ValueError("an image must be a base64 string")
    with warnings.catch_warnings():  # the cap below governs, before anything is decoded
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
        except Image.DecompressionBombError as exc:  # Pillow's own, larger cap
            raise ValueError(f"image over the {MAX_PIXELS}-pixel cap ({exc})") from None
        if img.width * img.height > MAX_PIXELS:
            raise ValueError(f"image of {img.width}x{img.height} is over the {MAX_PIXELS}-pixel cap")
        return img.convert("RGB")


def _encode(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unguarded(host: str, token: str | None) -> str | None:
    """Why serving on ``host`` with ``token`` is refused (off the loopback without a token), or None."""
    if token or is_loopback(host):
        return None
    return (f"binding {host} exposes the model to anyone who reaches the port: set {TOKEN_ENV} to a secret "
            "token (clients send it from the same variable), or bind 127.0.0.1")  # fmt: skip


Answer = dict[str, Any]  # {"text": str} / {"image": PIL image}, or {"error": str}; "meta" optional


class _Server(ThreadingHTTPServer):
    """A threading server with a bounded number of connections (the rest are answered 503 at once)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], slots: int) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(slots)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                                b"connection: close\r\n\r\n")  # fmt: skip
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def protocol_server(
    host: str,
    port: int,
    health: dict[str, Any],
    understand_batch: Callable[[list[dict[str, Any]]], list[Answer]],
    generate_batch: Callable[[list[dict[str, Any]]], list[Answer]],
    *,
    token: str | None = None,
    max_connections: int = MAX_CONNECTIONS,
) -> ThreadingHTTPServer:
    """An HTTP server speaking the protocol around two batch functions (also what ``gapeval serve`` runs).

    Each function gets the decoded requests (images as PIL RGB) and returns one answer per request;
    calls are served one at a time. With ``token``, every request must carry ``Authorization: Bearer
    TOKEN`` (401 otherwise); a server bound off the loopback refuses to start without one.
    """
    if refused := unguarded(host, token):
        raise ValueError(refused)
    lock = threading.Lock()
    reply_health = {"protocol": PROTOCOL, "version": VERSION, **health}
    expected = f"Bearer {token}".encode() if token else None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        timeout = IDLE_S  # per socket operation: an idle or stalled connection is closed

        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            given = (self.headers.get("authorization") or "").encode()
            if expected is None or hmac.compare_digest(given, expected):
                return True
            self.close_connection = True
            self._send(401, {"error": "missing or wrong token (Authorization: Bearer ...)"})
            return False

        def _body(self) -> bytes:
            raw = (self.headers.get("content-length") or "0").strip()
            if not raw.isdigit():  # a negative or garbled length would read until the client stops
                raise ValueError(f"content-length must be a non-negative integer, not {raw[:40]!r}")
            length = int(raw)
            if length > MAX_BODY:
                raise ValueError(f"request of {length} bytes is over the {MAX_BODY}-byte cap")
            deadline, chunks, got = time.monotonic() + BODY_S, [], 0
            while got < length:
                if time.monotonic() > deadline:
                    raise ValueError(f"request body not received within {BODY_S:.0f} s")
                chunk = self.rfile.read1(min(1 << 20, length - got))
                if not chunk:
                    raise ValueError("request body ended early")
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.rstrip("/") != "/v1/health":
                self._send(404, {"error": "no such endpoint"})
                return
            self._send(200, reply_health)

        def do_POST(self) -> None:
            if not self._authorised():
                return
            path = self.path.rstrip("/")
            try:
                body = self._body()
                if path not in ("/v1/understand", "/v1/generate"):
                    self._send(404, {"error": "no such endpoint"})
                    return
                requests = json.loads(body or b"{}")["requests"]
                if not isinstance(requests, list) or not all(isinstance(r, dict) for r in requests):
                    raise ValueError("requests must be a list of objects")
                if len(requests) > MAX_REQUESTS:
                    raise ValueError(f"{len(requests)} requests in one call; at most {MAX_REQUESTS}")
                if path == "/v1/understand":
                    batch = [{**r, "images": [_decode(b) for b in r.get("images") or []]} for r in requests]
                else:
                    batch = [{**r, "input_image": _decode(r["input_image"]) if r.get("input_image") else None}
                             for r in requests]  # fmt: skip
            except (TimeoutError, ConnectionError):
                self.close_connection = True
                return
            except Exception as exc:  # anything a client can send wrong is its 400, never a dropped line
                self.close_connection = True
                self._send(400, {"error": f"bad request ({type(exc).__name__}: {exc})"})
                return
            try:
                with lock:
                    answers = (understand_batch if path == "/v1/understand" else generate_batch)(batch)
                outputs = [_wire(a) for a in answers]
            except Exception as exc:  # the model failed this whole call: the client records it per request
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, {"outputs": outputs})

    return _Server((host, port), Handler, max_connections)


def _wire(answer: Answer) -> dict[str, Any]:
    image = answer.get("image")
    out: dict[str, Any] = {"error": answer.get("error"), "meta": answer.get("meta") or {}}
    if "text" in answer:
        out["text"] = answer["text"]
    else:
        out["image"] = _encode(image) if isinstance(image, Image.Image) else None
    return out


def make_server(host: str, port: int) -> ThreadingHTTPServer:
    """The HTTP server around the three functions at the top of this file."""
    token = os.environ.get(TOKEN_ENV) or None
    if refused := unguarded(host, token):
        sys.exit(f"error: {refused}")
    model = load_model()
    health = {"name": NAME, "capabilities": CAPABILITIES, "batch_size": BATCH_SIZE, "identity": IDENTITY,
              "description": {"server": "template_server.py", "name": NAME}}  # fmt: skip
    return protocol_server(
        host,
        port,
        health,
        lambda batch: [{"text": t} for t in understand(model, batch)],
        lambda batch: [{"image": i} for i in generate(model, batch)],
        token=token,
    )


def main() -> None:
    """``python template_server.py [--host 127.0.0.1] [--port 8900]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args()
    server = make_server(args.host, args.port)
    print(f"serving {NAME} on http://{args.host}:{server.server_address[1]}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
