"""The one client layer for OpenAI-compatible endpoints, shared by the VLM judge and the API model adapter.

- Every way a reply can be unusable (status, transport, body, shape, headers) is a retryable attempt, with
  exponential backoff and jitter, up to a hard cap; ``Retry-After`` is honoured up to
  ``max_retry_after_s``; after the cap the caller gets :class:`Retryable` and records a failure for that
  request alone.
- The API key is read from an environment variable when the client is built, and never written anywhere.
- :func:`drive` runs a batch of coroutines on an event loop of their own, handing each result to the
  calling thread as it arrives, whether or not a loop is already running there (a notebook).
"""

from __future__ import annotations

import asyncio
import email.utils
import http.client
import math
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gapeval.errors import GapevalError

T = TypeVar("T")
R = TypeVar("R")


class Retryable(Exception):
    """An unusable reply (retried), or, after the attempt cap, the reason a request failed."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


@dataclass
class ApiSettings:
    """How an endpoint is reached (everything but the key is recorded)."""

    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    max_attempts: int = 6
    timeout_s: float = 120.0
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 60.0

    def resolved_base_url(self) -> str | None:
        """Where requests really go: ``base_url``, else ``OPENAI_BASE_URL`` (the openai client reads it)."""
        return self.base_url or os.environ.get("OPENAI_BASE_URL") or None

    def endpoint(self) -> str:
        """The endpoint as host and path, for identities (``api.openai.com/v1`` when none is set)."""
        url = self.resolved_base_url()
        if not url:
            return "api.openai.com/v1"
        parts = urlsplit(url)
        return f"{parts.netloc}{parts.path.rstrip('/')}" if parts.netloc else url


def check_endpoint(settings: ApiSettings, timeout_s: float = 10.0) -> None:
    """One cheap request (``GET /models``) before any work, so a wrong address fails in one line at once.

    Any HTTP answer but 401/403 counts as reachable (not every compatible server lists its models).

    Raises:
        GapevalError: The endpoint cannot be reached, or refuses the key.

    """
    base = (settings.resolved_base_url() or "https://api.openai.com/v1").rstrip("/")
    req = urllib.request.Request(f"{base}/models", headers={"authorization": f"Bearer {api_key(settings)}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            resp.read(1 << 16)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise GapevalError(
                f"{base} refused the key in {settings.api_key_env} (HTTP {exc.code})", field="api_key_env"
            ) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise GapevalError(f"cannot reach {base} ({reason}); check base_url", field="base_url") from None


@dataclass
class ApiUsage:
    """Request and token accounting."""

    requests: int = 0
    retries: int = 0
    failures: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    wall_s: float = 0.0
    capped_waits: int = 0

    def count(self, reply: Any) -> None:
        """Add a reply's ``usage`` (anything that is not a plain number counts as 0)."""
        usage = reply.get("usage") if isinstance(reply, dict) else None
        if isinstance(usage, dict):
            self.tokens_in += token_count(usage.get("prompt_tokens"))
            self.tokens_out += token_count(usage.get("completion_tokens"))


def token_count(value: Any) -> int:
    """A token count from a reply; anything that is not a non-negative number counts as 0."""
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else 0


def retry_after(headers: Any) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date); None when absent or garbage."""
    try:
        value = headers.get("retry-after") if headers is not None else None
    except Exception:  # headers of an odd type: as if absent
        return None
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            parsed = email.utils.parsedate_to_datetime(str(value))
            seconds = parsed.timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError, AttributeError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def chat_message(reply: Any) -> dict[str, Any]:
    """The first choice's message of a chat completion, or Retryable naming what is wrong with the shape."""
    if not isinstance(reply, dict):
        raise Retryable(f"reply is not a JSON object ({type(reply).__name__})")
    choices = reply.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise Retryable("reply has no choices")
    message = choices[0].get("message")
    if not isinstance(message, dict):
        raise Retryable("reply has no message")
    return message


def chat_text(reply: Any) -> str:
    """The text of a chat completion, or Retryable."""
    content = chat_message(reply).get("content")
    if isinstance(content, list):  # content parts: keep the text ones
        content = "".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    if not isinstance(content, str) or not content.strip():
        raise Retryable("reply has no content")
    return content


class ApiClient:
    """An ``openai.AsyncOpenAI`` client with the retry rules above (one per event loop)."""

    def __init__(
        self, settings: ApiSettings, usage: ApiUsage, notify: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.usage = usage
        self.notify = notify or (lambda _: None)
        self.client = self.client_class()(
            api_key=api_key(settings),
            base_url=settings.resolved_base_url(),
            max_retries=0,
            timeout=settings.timeout_s,
        )

    @staticmethod
    def client_class() -> Any:
        """``openai.AsyncOpenAI``, or one line naming the extra to install."""
        try:
            from openai import AsyncOpenAI
        except ImportError as exc:
            raise GapevalError("this needs the openai client: pip install 'gapeval[judge]'") from exc
        return AsyncOpenAI

    async def call(self, send: Callable[[Any], Awaitable[T]], read: Callable[[T], R]) -> R:
        """``read(await send(client))`` with retries; raises Retryable after the attempt cap.

        ``read`` turns the reply into the value, raising Retryable when the reply is unusable.
        """
        import openai

        s = self.settings
        last = "no attempt"
        for attempt in range(s.max_attempts):
            wait: float | None = None
            try:
                self.usage.requests += 1
                return read(await send(self.client))
            except openai.APIStatusError as exc:
                if exc.status_code not in (408, 409, 429) and exc.status_code < 500:
                    said = " ".join(str(getattr(exc, "message", "") or "").split())[:200]
                    said = f" ({said})" if said else ""
                    raise Retryable(f"HTTP {exc.status_code}{said}: not retryable", wait=-1.0) from exc
                last = f"HTTP {exc.status_code}"
                wait = retry_after(getattr(exc.response, "headers", None))
            except openai.APITimeoutError:
                last = "timeout"
            except openai.APIConnectionError as exc:
                last = f"connection error ({exc.__class__.__name__})"
            except Retryable as exc:
                last = str(exc)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any other unusable reply (HTML, truncated or undecodable body)
                last = f"unusable reply ({exc.__class__.__name__})"
            if attempt + 1 < s.max_attempts:
                self.usage.retries += 1
                note = ""
                if wait is not None and wait > s.max_retry_after_s:
                    note = f" (Retry-After {wait:.0f} s, capped at {s.max_retry_after_s:g} s)"
                    self.usage.capped_waits += 1
                    wait = s.max_retry_after_s
                if wait is None:
                    wait = min(s.max_backoff_s, s.backoff_s * 2**attempt) * (0.5 + random.random())
                self.notify(f"{last}; retrying in {wait:.1f} s{note}")
                await asyncio.sleep(wait)
        raise Retryable(f"gave up after {s.max_attempts} attempts ({last})")

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.close()


def api_key(settings: ApiSettings) -> str:
    """The API key from its environment variable, or one line saying which variable to set."""
    key = os.environ.get(settings.api_key_env)
    if not key:
        raise GapevalError(
            f"set the API key in the environment variable {settings.api_key_env}", field="api_key_env"
        )
    return key


def drive(
    run: Callable[[Callable[[int, T], None]], Coroutine[Any, Any, None]], emit: Callable[[int, T], None]
) -> None:
    """Run ``run(put)`` on an event loop of its own; every ``put(i, value)`` reaches ``emit`` on this thread.

    Without a running loop here it is ``asyncio.run``; inside one (a notebook cell), the loop runs in a
    worker thread and the values come back through a queue, so ``emit`` may touch this thread's SQLite.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run(emit))
        return
    done: queue.Queue[tuple[int, T] | BaseException | None] = queue.Queue()

    def work() -> None:
        try:
            asyncio.run(run(lambda i, value: done.put((i, value))))
        except BaseException as exc:  # handed to the calling thread, raised there
            done.put(exc)
        else:
            done.put(None)

    threading.Thread(target=work, name="gapeval-api-loop", daemon=True).start()
    while (got := done.get()) is not None:
        if isinstance(got, BaseException):
            raise got
        emit(*got)
