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
import io
import json
import threading
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


def _decode(b64: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(b64, validate=True)))
    if img.width * img.height > MAX_PIXELS:
        raise ValueError("image too large")
    return img.convert("RGB")


def _encode(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


Answer = dict[str, Any]  # {"text": str} / {"image": PIL image}, or {"error": str}; "meta" optional


def protocol_server(
    host: str,
    port: int,
    health: dict[str, Any],
    understand_batch: Callable[[list[dict[str, Any]]], list[Answer]],
    generate_batch: Callable[[list[dict[str, Any]]], list[Answer]],
) -> ThreadingHTTPServer:
    """An HTTP server speaking the protocol around two batch functions (also what ``gapeval serve`` runs).

    Each function gets the decoded requests (images as PIL RGB) and returns one answer per request;
    calls are served one at a time.
    """
    lock = threading.Lock()
    reply_health = {"protocol": PROTOCOL, "version": VERSION, **health}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/") != "/v1/health":
                self._send(404, {"error": "no such endpoint"})
                return
            self._send(200, reply_health)

        def do_POST(self) -> None:
            path = self.path.rstrip("/")
            try:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    raise ValueError("request too large")
                requests = json.loads(self.rfile.read(length) or b"{}")["requests"]
                if path == "/v1/understand":
                    batch = [{**r, "images": [_decode(b) for b in r.get("images") or []]} for r in requests]
                elif path == "/v1/generate":
                    batch = [{**r, "input_image": _decode(r["input_image"]) if r.get("input_image") else None}
                             for r in requests]  # fmt: skip
                else:
                    self._send(404, {"error": "no such endpoint"})
                    return
            except (ValueError, KeyError, TypeError, OSError) as exc:
                self._send(400, {"error": f"bad request ({exc})"})
                return
            try:
                with lock:
                    answers = (understand_batch if path == "/v1/understand" else generate_batch)(batch)
                outputs = [_wire(a) for a in answers]
            except Exception as exc:  # the model failed this whole call: the client records it per request
                self._send(500, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._send(200, {"outputs": outputs})

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


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
    model = load_model()
    health = {"name": NAME, "capabilities": CAPABILITIES, "batch_size": BATCH_SIZE, "identity": IDENTITY,
              "description": {"server": "template_server.py", "name": NAME}}  # fmt: skip
    return protocol_server(
        host,
        port,
        health,
        lambda batch: [{"text": t} for t in understand(model, batch)],
        lambda batch: [{"image": i} for i in generate(model, batch)],
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
