"""A loopback HTTP server that speaks the OpenAI chat-completions protocol, with scripted replies.

It binds 127.0.0.1 only, serves each request on its own thread (so latency can be injected without
serialising requests) and records every request body. Use it to test a judge configuration offline::

    with ScriptedServer(lambda body, n: Reply(content='{"reason": "ok", "verdict": "pass"}')) as srv:
        ... base_url=srv.base_url ...
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    """What the server answers to one request.

    Attributes:
        content: The assistant message's text (a normal reply).
        status: HTTP status; not 200 sends an OpenAI-style error object.
        headers: Extra headers (e.g. ``Retry-After``).
        delay_s: Seconds to wait before answering.
        error: The error message of a non-200 reply.
        body: Raw bytes to send instead of any JSON (an HTML page, an empty body, garbage).
        payload: A JSON value to send instead of a chat completion (a reply of another shape).
        content_type: The reply's content type.
        truncate: Announce the full length but send only half the body, then close the connection.
        usage: The ``usage`` object of a normal reply.

    """

    content: str | None = '{"reason": "looks right", "verdict": "pass"}'
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    error: str = "scripted error"
    body: bytes | None = None
    payload: Any = None
    content_type: str = "application/json"
    truncate: bool = False
    usage: Any = field(
        default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    )


Script = Callable[[dict[str, Any], int], Reply]


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops bursts of concurrent connections; real servers queue more.
    request_queue_size = 512


class ScriptedServer:
    """Serve ``script(request_body, request_number)`` on 127.0.0.1 until closed."""

    def __init__(self, script: Script | None = None, port: int = 0) -> None:
        self.script: Script = script or (lambda body, n: Reply())
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in two writes; with Nagle's algorithm on, the body then
            # waits for the client's delayed ACK of the headers (up to 40 ms on Linux). Real servers
            # (uvicorn, vLLM) set TCP_NODELAY, and so does this one.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                raw = self.rfile.read(length)
                if self.headers.get("content-type", "").startswith("multipart/"):
                    body: dict[str, Any] = {"_multipart": raw.decode("latin-1")}
                else:
                    body = json.loads(raw or b"{}")
                # where the request went (/v1/chat/completions, /v1/images/edits, ...), for routing scripts
                body["_path"] = self.path
                with server._lock:
                    n = len(server.requests)
                    server.requests.append(body)
                    server.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = server.script(body, n)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.status == 200:
                    payload: dict[str, Any] = {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "?"),
                        "choices": [
                            {
                                "index": 0,
                                "finish_reason": "stop",
                                "message": {"role": "assistant", "content": reply.content},
                            }
                        ],
                        "usage": reply.usage,
                    }
                else:
                    payload = {"error": {"message": reply.error, "type": "scripted", "code": reply.status}}
                if reply.payload is not None:
                    payload = reply.payload
                data = reply.body if reply.body is not None else json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", reply.content_type)
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if reply.truncate:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError, OSError):  # the client gave up (timeout test)
                    pass

        self._httpd = _Server(("127.0.0.1", port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The ``/v1`` base URL to give the client."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def chaos_reply(kind: str) -> Reply:
    """A scripted reply of one kind from :data:`CHAOS_KINDS`, for fault-injection tests.

    Every kind but ``good`` and ``bad-usage`` is unusable: ``html``, ``empty``, ``wrong-shape``,
    ``truncated``, ``slow`` (answers after 5 s), ``retry-after-huge`` (429, an hour),
    ``retry-after-garbage`` (429, an unparseable header), ``5xx``, ``no-content``, ``ambiguous`` (prose
    with a verdict of its own around a JSON one), ``not-json``.
    """
    good = '{"reason": "fine", "verdict": "pass"}'
    return {
        "good": Reply(content=good),
        "html": Reply(body=b"<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html"),
        "empty": Reply(body=b""),
        "wrong-shape": Reply(payload={"result": {"text": good}}),
        "truncated": Reply(content=good, truncate=True),
        "slow": Reply(content=good, delay_s=5.0),
        "retry-after-huge": Reply(status=429, headers={"retry-after": "3600"}),
        "retry-after-garbage": Reply(status=429, headers={"retry-after": "soon, maybe"}),
        "5xx": Reply(status=503),
        "bad-usage": Reply(content=good, usage={"prompt_tokens": "many", "completion_tokens": None}),
        "no-content": Reply(payload={"choices": [{"message": {"role": "assistant"}}]}),
        "ambiguous": Reply(content='This fails. But {"reason": "x", "verdict": "pass"}'),
        "not-json": Reply(content="I think it is fine."),
    }[kind]


CHAOS_KINDS = (
    "good", "html", "empty", "wrong-shape", "truncated", "slow", "retry-after-huge", "retry-after-garbage",
    "5xx", "bad-usage", "no-content", "ambiguous", "not-json",
)  # fmt: skip


def _latency_reply(kind: str, latency: float) -> Script:
    if kind == "verdict":
        return lambda body, n: Reply(content='{"reason": "scripted", "verdict": "pass"}', delay_s=latency)
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()

    def model(body: dict[str, Any], n: int) -> Reply:
        if str(body.get("_path", "")).endswith(("/images/generations", "/images/edits")):
            return Reply(payload={"created": 0, "data": [{"b64_json": png}]}, delay_s=latency)
        return Reply(content="an answer", delay_s=latency)

    return model


def _serve_in_process(kind: str, latency: float, ports: Any, stop: Any) -> None:
    with ScriptedServer(_latency_reply(kind, latency)) as srv:
        ports.put(srv.base_url)
        stop.wait()
        ports.put(len(srv.requests))


class ServerProcess:
    """A loopback server with fixed latency in a process of its own, as a real endpoint would be.

    Its parsing is then not the client's cost. ``kind``: ``verdict`` (a judge's replies) or ``model``
    (text answers and images).
    """

    def __init__(self, kind: str, latency: float) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._ports, self._stop = ctx.Queue(), ctx.Event()
        self._proc = ctx.Process(
            target=_serve_in_process, args=(kind, latency, self._ports, self._stop), daemon=True
        )

    def __enter__(self) -> ServerProcess:
        self._proc.start()
        self.base_url: str = self._ports.get(timeout=60)
        return self

    def stop(self) -> int:
        """Stop serving; returns how many requests the server saw."""
        self._stop.set()
        seen = int(self._ports.get(timeout=60))
        self._proc.join(timeout=10)
        return seen

    def __exit__(self, *exc: object) -> None:
        if self._proc.is_alive():
            self._stop.set()
            self._proc.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """``python -m gapeval.testing.openai_server --port 8765 --record requests.jsonl``.

    A loopback chat-completions endpoint that passes every output and appends each request body to a
    JSON-lines file: point two harnesses at it (gapeval with ``--base-url http://127.0.0.1:8765/v1``, the
    authors' script with its URL set to the same) and compare what each sent. Ctrl-C stops it.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--record", type=Path, required=True, help="JSON-lines file to append requests to")
    args = parser.parse_args(argv)
    lock = threading.Lock()

    def record(body: dict[str, Any], n: int) -> Reply:
        with lock, args.record.open("a", encoding="utf-8") as sink:
            sink.write(json.dumps(body, sort_keys=True) + "\n")
        return Reply(content='{"reason": "recorded", "score": 1}')

    with ScriptedServer(record, port=args.port) as srv:
        print(f"recording to {args.record}; base URL {srv.base_url} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
