"""A loopback HTTP server that speaks the OpenAI chat-completions protocol, with scripted replies.

It binds 127.0.0.1 only, serves each request on its own thread (so latency can be injected without
serialising requests) and records every request body. Use it to test a judge configuration offline::

    with ScriptedServer(lambda body, n: Reply(content='{"reason": "ok", "verdict": "pass"}')) as srv:
        ... base_url=srv.base_url ...
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """What the server answers to one request."""

    content: str | None = '{"reason": "looks right", "verdict": "pass"}'
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    error: str = "scripted error"


Script = Callable[[dict[str, Any], int], Reply]


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops bursts of concurrent connections; real servers queue more.
    request_queue_size = 512


class ScriptedServer:
    """Serve ``script(request_body, request_number)`` on 127.0.0.1 until closed."""

    def __init__(self, script: Script | None = None) -> None:
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
                body = json.loads(self.rfile.read(length) or b"{}")
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
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
                    }
                else:
                    payload = {"error": {"message": reply.error, "type": "scripted", "code": reply.status}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
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
