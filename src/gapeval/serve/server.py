"""``gapeval serve SPEC``: any gapeval adapter behind the model-server protocol.

Run it where the model's environment is (another process, another machine with a GPU), and point a run
at it with ``-m http://HOST:PORT``. It runs the very server of the standalone template
(:func:`gapeval.serve.template_server.protocol_server`), so both speak the protocol the same way; calls
are served one at a time (models are not thread-safe), and each request's failure is its own. Off the
loopback it requires a token (``GAPEVAL_SERVE_TOKEN``), which clients send as a bearer token.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError
from gapeval.models.base import (
    GenerateRequest,
    ModelContext,
    UnderstandRequest,
    UnifiedModel,
    load_model,
    model_identity,
)
from gapeval.serve.template_server import TOKEN_ENV, Answer, protocol_server, unguarded


class ModelServer:
    """Serves one built model on ``host:port`` until :meth:`close`."""

    def __init__(
        self,
        spec: str,
        options: dict[str, str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        context: ModelContext | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise GapevalError(f"port must lie in 0..65535, not {port}", field="--port")
        token = os.environ.get(TOKEN_ENV) or None
        if refused := unguarded(host, token):  # before the model is loaded
            raise GapevalError(refused, field="--host")
        ctx = context or ModelContext()
        opts = dict(options or {})
        identity = model_identity(spec, opts, ctx)
        self.model: UnifiedModel = load_model(spec, suite=ctx, options=opts)
        self._files = tempfile.TemporaryDirectory(prefix="gapeval-serve-")
        caps = self.model.capabilities
        health = {
            "name": self.model.name,
            "capabilities": {
                "understands": caps.understands,
                "generates": caps.generates,
                "edits": caps.edits,
            },
            "batch_size": int(getattr(self.model, "batch_size", 8)),
            "identity": identity,
            "description": self.model.describe(),
        }
        self._httpd = protocol_server(host, port, health, self._understand, self._generate, token=token)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://HOST:PORT``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def _file(self, image: Any, name: str) -> str:
        # Adapters take image paths: a call's images live in a private folder while it runs.
        path = Path(self._files.name) / name
        image.save(path)
        return str(path)

    def _understand(self, batch: list[dict[str, Any]]) -> list[Answer]:
        requests = [
            UnderstandRequest(
                item_id=str(r["item_id"]),
                prompt=str(r["prompt"]),
                images=tuple(self._file(img, f"u{i}-{k}.png") for k, img in enumerate(r["images"])),
                seed=int(r.get("seed", 0)),
                sample=int(r.get("sample", 0)),
            )
            for i, r in enumerate(batch)
        ]
        return [{"text": o.text, "error": o.error, "meta": o.meta} for o in self.model.understand(requests)]

    def _generate(self, batch: list[dict[str, Any]]) -> list[Answer]:
        requests = [
            GenerateRequest(
                item_id=str(r["item_id"]),
                prompt=str(r["prompt"]),
                input_image=self._file(r["input_image"], f"g{i}.png")
                if r["input_image"] is not None
                else None,
                seed=int(r.get("seed", 0)),
                sample=int(r.get("sample", 0)),
            )
            for i, r in enumerate(batch)
        ]
        return [{"image": o.image, "error": o.error, "meta": o.meta} for o in self.model.generate(requests)]

    def start(self) -> ModelServer:
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._httpd.serve_forever()

    def close(self) -> None:
        """Stop serving."""
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
        self._files.cleanup()
