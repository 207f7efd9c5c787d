"""The VLM judge: any OpenAI-compatible chat-completions endpoint (hosted API, OpenRouter, local vLLM).

- Rubrics are data (``judges/rubrics/*.yaml``); the rubric text and the protocol settings are hashed
  into the verdict cache key, so changing either re-judges and nothing else does.
- Requests run concurrently under a bound, with retries (exponential backoff with jitter, honouring
  ``Retry-After``) on 429, 5xx, timeouts and unusable replies, up to a hard attempt cap; after that the
  output's verdict is stored as ``failed`` with the reason (retried on the next judging, never counted
  against the model).
- Options: the two-turn protocol of the reference pipeline ("Are you sure? Think carefully.", keeping
  the second verdict and recording both), and ``k`` independent samples per output with majority or
  mean aggregation and their agreement stored.
- The API key is read from an environment variable at call time and never written anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gapeval.errors import GapevalError
from gapeval.images import over_cap
from gapeval.items import Direction, Item
from gapeval.judges import rubric as rubric_module
from gapeval.judges.authors import find_slot, item_folder, record_fields
from gapeval.judges.base import Decision, JudgeContext, JudgeTask, JudgeUsage, RubricRef, text_hash
from gapeval.judges.rubric import (
    ImageSlot,
    Rubric,
    load_rubric_dir,
    match_rubric,
    parse_authors_verdict,
    parse_verdict,
)
from gapeval.openai_client import ApiClient, ApiSettings, Retryable, chat_message, chat_text, drive
from gapeval.options import set_options
from gapeval.records import VerdictStatus

DEFAULT_MODEL = "gpt-5-mini"
#: How outputs are put into a rubric; part of every verdict's hash, so a change re-judges.
RENDERING = "render-v2: the model's text as a JSON string literal"
FOLLOW_UP = "Are you sure? Think carefully."


#: Named judging protocols: the settings that change verdicts. ``paper`` is the authors' released
#: judge as the paper reports it: two turns ("Are you sure?") for text answers only, and 10 judge calls
#: averaged per output.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "default": {"samples": 1, "aggregation": "mean", "two_turn": "off", "image_max_side": 1024},
    "paper": {"samples": 10, "aggregation": "mean", "two_turn": "text", "image_max_side": 1024},
}
_TWO_TURN = {"off": "off", "false": "off", "0": "off", "no": "off", "text": "text", "und": "text",
             "all": "all", "true": "all", "1": "all", "yes": "all"}  # fmt: skip


@dataclass
class VLMSettings(ApiSettings):
    """How the judge is reached (see :class:`~gapeval.openai_client.ApiSettings`) and how it judges."""

    model: str = DEFAULT_MODEL
    protocol: str = "default"
    samples: int = 1
    aggregation: str = "mean"
    two_turn: str = "off"
    image_max_side: int = 1024
    max_tokens: int | None = None
    rubrics: str = ""
    rubrics_tag: str = ""

    def protocol_name(self) -> str:
        """The protocol's name, or its settings when they match no named protocol."""
        current = {k: getattr(self, k) for k in PROTOCOLS["default"]}
        for name, preset in PROTOCOLS.items():
            if current == preset:
                return name
        return ",".join(f"{k}={v}" for k, v in current.items() if PROTOCOLS["default"][k] != v)

    def judge_id(self) -> str:
        """Model, protocol, token budget and endpoint: everything that changes verdicts."""
        ident = f"openai:{self.model}[{self.protocol_name()}"
        ident += f",max_tokens={self.max_tokens}" if self.max_tokens else ""
        ident += f",rubrics={self.rubrics_tag}]" if self.rubrics_tag else "]"
        if self.resolved_base_url():  # wherever it came from (option or OPENAI_BASE_URL), it is named
            ident += f"@{self.endpoint()}"
        return ident

    def two_turn_for(self, direction: Direction) -> bool:
        """Whether answers in ``direction`` get the second turn."""
        return self.two_turn == "all" or (self.two_turn == "text" and direction is Direction.UND)


@dataclass
class _ImageCache:
    max_side: int
    urls: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        if path not in self.urls:
            with Image.open(path) as src:
                if too_big := over_cap(src):
                    raise GapevalError(f"is {too_big}", file=path)
                fmt = "JPEG" if (src.format or "").upper() == "JPEG" else "PNG"
                if src.format in ("PNG", "JPEG") and max(src.size) <= self.max_side:
                    # Small enough: send the file's own bytes, no decode and re-encode.
                    mime = "image/jpeg" if fmt == "JPEG" else "image/png"
                    data = base64.b64encode(Path(path).read_bytes()).decode()
                    self.urls[path] = f"data:{mime};base64,{data}"
                    return self.urls[path]
                img = src.convert("RGB")
                if max(img.size) > self.max_side:
                    scale = self.max_side / max(img.size)
                    img = img.resize(
                        (max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                        Image.Resampling.LANCZOS,
                    )
                buf = io.BytesIO()
                img.save(buf, format=fmt)
            mime = "image/jpeg" if fmt == "JPEG" else "image/png"
            self.urls[path] = f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"
        return self.urls[path]

    def file_url(self, path: str) -> str:
        """The file's own bytes, typed by its suffix (as the authors' script sends images)."""
        key = "file\0" + path
        if key not in self.urls:
            with Image.open(path) as src:
                if too_big := over_cap(src):
                    raise GapevalError(f"is {too_big}", file=path)
            mime = "image/jpeg" if Path(path).suffix.lower() in (".jpg", ".jpeg") else "image/png"
            self.urls[key] = f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"
        return self.urls[key]


class VLMJudge:
    """An OpenAI-compatible vision-language model as judge (spec ``openai:MODEL``)."""

    def __init__(self, settings: VLMSettings, rubrics: tuple[Rubric, ...] | None = None) -> None:
        self.settings = settings
        self._rubrics = rubrics
        self.suite_root = ""
        self.protocol = settings.protocol_name()
        self.judge_id = settings.judge_id()
        self.spec = f"openai:{settings.model}" + (
            f" base_url={settings.resolved_base_url()}" if settings.resolved_base_url() else ""
        )
        self._usage = JudgeUsage()
        self._notify: Callable[[str], None] = lambda _: None
        self._images = _ImageCache(settings.image_max_side)
        self._prep_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gapeval-judge-prep")

    @property
    def rubrics(self) -> tuple[Rubric, ...]:
        """The rubric set in force: one's own (``rubrics=DIR``) or the built-in one."""
        return rubric_module.all_rubrics() if self._rubrics is None else self._rubrics

    @classmethod
    def from_spec(cls, arg: str, context: JudgeContext) -> VLMJudge:
        """``openai:MODEL`` (default gpt-5-mini).

        Options: protocol (default or paper, applied first), base_url, api_key_env, concurrency, samples,
        aggregation, two_turn (off, text or all), max_attempts, timeout_s, backoff_s, max_backoff_s,
        max_retry_after_s (the longest Retry-After obeyed, default 60 s), image_max_side, max_tokens,
        rubrics (a rubric directory of one's own, e.g. the authors' imported by
        ``gapeval rubrics import-authors``, replacing the built-in set).
        """
        opts = dict(context.options)
        s = VLMSettings(model=arg or DEFAULT_MODEL)
        rubrics: tuple[Rubric, ...] | None = None
        if opts.get("rubrics"):
            where = Path(opts.pop("rubrics")).expanduser().resolve()
            rubrics = load_rubric_dir(where)
            s.rubrics = str(where)
            # The set is named in the judge id (beside the per-rubric hashes in every verdict key), so a
            # run judged with two sets shows two judges.
            s.rubrics_tag = f"{where.name}:{text_hash(*(r.text for r in rubrics))[:8]}"
        opts.pop("rubrics", None)
        preset = opts.pop("protocol", "default")
        if preset not in PROTOCOLS:
            raise GapevalError(
                f"unknown protocol {preset!r}; known: {', '.join(PROTOCOLS)}", field="protocol"
            )
        for key, value in PROTOCOLS[preset].items():
            setattr(s, key, value)
        two_turn = opts.pop("two_turn", None)
        if two_turn is not None:
            if two_turn.lower() not in _TWO_TURN:
                raise GapevalError(f"invalid value {two_turn!r}; off, text or all", field="two_turn")
            s.two_turn = _TWO_TURN[two_turn.lower()]
        set_options(s, opts, "--judge-opt", fixed=("model", "protocol", "two_turn", "rubrics", "rubrics_tag"))
        if s.aggregation not in ("mean", "majority"):
            raise GapevalError("aggregation must be mean or majority", field="aggregation")
        if s.samples < 1 or s.concurrency < 1 or s.max_attempts < 1:
            raise GapevalError(
                "samples, concurrency and max_attempts must be at least 1", field="--judge-opt"
            )
        judge = cls(s, rubrics)
        judge.suite_root = context.suite.root
        if context.notify is not None:
            judge._notify = context.notify
        ApiClient.client_class()  # a missing extra or key is one line now, before any model runs
        if not os.environ.get(s.api_key_env):
            raise GapevalError(
                f"set the API key in the environment variable {s.api_key_env} (or judge with -j rules)",
                field="api_key_env",
            )
        return judge

    def usage(self) -> JudgeUsage:
        """Requests, retries and tokens so far."""
        return self._usage

    def _balance(self, item: Item) -> Rubric | None:
        try:
            return match_rubric(item, "balance", self.rubrics)[0]
        except GapevalError:
            return None

    def rubric(self, task: JudgeTask) -> RubricRef:
        """The one rubric governing this output, hashed with what else decides its verdict.

        The consistency check's text joins choice-gen's; a text-gated rubric's hash also holds the text
        rubric whose verdict opens the gate and the balance rubric it leads to.
        """
        rubric, fallback = match_rubric(task.item, task.direction, self.rubrics)
        parts = [RENDERING, rubric.text]
        if rubric.id == "choice-gen" or rubric.text_gate:
            balance = self._balance(task.item)
            parts += [balance.text] if balance else []
        if rubric.text_gate:
            parts.append(match_rubric(task.item, Direction.UND, self.rubrics)[0].text)
        return RubricRef(rubric.id, text_hash(*parts), fallback)

    # -- messages ------------------------------------------------------------------------------------
    def messages(
        self, rubric: Rubric, item: Item, task: JudgeTask, model_text: str | None = None
    ) -> list[Any]:
        """The chat messages for one output under one rubric (images as data URLs).

        Raises:
            GapevalError: The rubric requires an image or field the item lacks (the output abstains).

        """
        direction = Direction.UND if rubric.direction == "und" else Direction.GEN
        prompt = item.und.prompt if direction is Direction.UND else item.gen.prompt
        question = (
            item.und.images[0].path
            if item.und.images
            else (item.gen.input_image.path if item.gen.input_image else None)
        )
        own = {
            "question": question,
            "reference": item.refs.image.path if item.refs.image else None,
            "output": str(task.image_path) if task.image_path else None,
        }
        folder = item_folder(item, self.suite_root)
        if rubric.rendering == "authors" and own["output"] and task.output.meta.get("file"):
            # A replayed output is sent as the file the authors' script would read.
            original = Path(str(task.output.meta["file"]))
            if original.is_file() and folder is not None:
                own["output"] = str(original)
        slots: list[tuple[str, str | None]] = [
            (s.name, find_slot(s, item, folder, own)) if isinstance(s, ImageSlot) else (s, own.get(s))
            for s in rubric.images
        ]
        record = record_fields(item)
        fields = {**record, "gen_prompt": item.gen.prompt}
        present = {name: bool(path) for name, path in slots}
        lacking = next((r for r in rubric.requires if not (present.get(r) or fields.get(r))), None)
        if lacking is not None:
            raise GapevalError(f"rubric {rubric.id} needs {lacking}, which this item lacks")
        text = rubric.render(
            prompt=prompt,
            und_prompt=item.und.prompt,
            gen_prompt=item.gen.prompt,
            reference=item.refs.text or "",
            choice=item.refs.choice or "",
            counts=item.refs.counts or {},
            # The model's words go in as one JSON string literal: quotes and newlines are escaped, so an
            # answer cannot close the rubric's quote and write instructions of its own. A foreign
            # rubric may take them as they are (``output_raw``), as its own harness passes them.
            output_text=json.dumps(task.output.text or "", ensure_ascii=False),
            model_text=json.dumps(model_text or "", ensure_ascii=False),
            output_raw=task.output.text or "",
            model_raw=model_text or "",
            has_reference_image=item.refs.image is not None,
            images=present,
            **record,
        )
        authors = rubric.rendering == "authors"
        url = self._images.file_url if authors else self._images.url
        urls = [url(str(path)) for _, path in slots if path]
        user: str | list[dict[str, Any]] = [{"type": "text", "text": text}] + [
            {"type": "image_url", "image_url": {"url": u}} for u in urls
        ]
        if authors and not urls:
            user = text  # their script sends a message without images as a plain string
        return [{"role": "system", "content": rubric.system}, {"role": "user", "content": user}]

    # -- calls ---------------------------------------------------------------------------------------
    async def _complete(
        self, client: ApiClient, messages: list[Any], extra: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """One chat completion with the shared retry rules: the reply's text and its message.

        Raises Retryable after the attempt cap.
        """
        body: dict[str, Any] = {"model": self.settings.model, "messages": messages, **(extra or {})}
        if self.settings.max_tokens:
            body["max_completion_tokens"] = self.settings.max_tokens

        def read(reply: Any) -> tuple[str, dict[str, Any]]:
            text = chat_text(reply)
            self._usage.count(reply)
            return text, chat_message(reply)

        # The client's own POST: same transport, auth and error types as chat.completions.create, without
        # its per-request walk over the typed parameters and typed reply (about 3 ms a request with images,
        # measured: on the event loop's one thread that queued requests behind each other and kept 32
        # concurrent requests from keeping up with a 300 ms endpoint).
        return await client.call(lambda c: c.post("/chat/completions", body=body, cast_to=dict), read)

    async def _verdict(
        self, client: Any, messages: list[Any], two_turn: bool = False, rubric: Rubric | None = None
    ) -> tuple[bool, str, list[str], str | None]:
        """Ask (and, two-turn, ask again) until a parseable verdict; returns the kept verdict and raws.

        The rubric may add request fields, say what the second turn asks and carries back, and read
        replies as another harness does (the authors' reading never retries: a reply it cannot read
        fails the output, as theirs does).
        """
        extra = rubric.extra_body() if rubric else {}
        follow_up = rubric.follow_up if rubric else None
        parse = parse_authors_verdict if rubric and rubric.parsing == "authors" else parse_verdict
        for _ in range(self.settings.max_attempts):
            first, message = await self._complete(client, messages, extra)
            raws = [first]
            reply = first
            if two_turn:
                said: dict[str, Any] = {"role": "assistant", "content": first}
                if follow_up is not None:
                    said["content"] = message.get("content")
                    said.update({k: message.get(k) for k in follow_up.carry})
                asked = follow_up.text if follow_up is not None else FOLLOW_UP
                follow = [*messages, said, {"role": "user", "content": asked}]
                reply, _ = await self._complete(client, follow, extra)
                raws.append(reply)
            passed, reason, label = parse(reply)
            if passed is not None:
                return passed, reason, raws, label
            self._usage.retries += 1
        raise Retryable("no parseable verdict in the replies")

    def _prepare(self, task: JudgeTask, direction: Direction | str | None = None) -> tuple[Rubric, list[Any]]:
        rubric = match_rubric(task.item, direction or task.direction, self.rubrics)[0]
        model_text = task.companion if rubric.direction == "balance" else None
        return rubric, self.messages(rubric, task.item, task, model_text)

    async def _text_first(self, client: Any, sem: asyncio.Semaphore, task: JudgeTask) -> Any:
        """The item's text answer, judged once per pass.

        Shared by its understanding output (first sample) and a text-gated image; neither holds a
        concurrency slot while it waits.
        """
        text = task.companion if task.direction is Direction.GEN else task.output.text
        key = (task.item.id, text or "")
        if key not in self._firsts:
            answer = task.output.model_copy(update={"text": text, "direction": Direction.UND})
            und = JudgeTask(task.item, answer, None, text)

            async def run() -> tuple[bool, str, list[str], str | None]:
                rubric, msgs = await asyncio.get_running_loop().run_in_executor(
                    self._prep_pool, self._prepare, und, Direction.UND
                )
                async with sem:
                    two = self.settings.two_turn_for(Direction.UND)
                    return await self._verdict(client, msgs, two, rubric)

            self._firsts[key] = asyncio.ensure_future(run())
        return await asyncio.shield(self._firsts[key])

    async def _one(self, client: Any, sem: asyncio.Semaphore, task: JudgeTask) -> Decision:
        model_text = task.companion
        try:
            # Messages are built in a worker thread before the request takes a concurrency slot: the
            # event loop's one thread then only sends and receives, and finished requests are not queued
            # behind the next ones' template rendering and image encoding.
            rubric, msgs = await asyncio.get_running_loop().run_in_executor(
                self._prep_pool, self._prepare, task
            )
            meta: dict[str, Any] = {"rubric": rubric.id}
            samples = []
            if rubric.text_gate and model_text is not None:
                # The authors' multiple-choice flow: a text answer judged wrong sends the image to the
                # consistency check instead (its verdict is the image's, as their script records it).
                text_ok = (await self._text_first(client, sem, task))[0]
                meta["text_verdict"] = int(text_ok)
                if not text_ok:
                    rubric, msgs = await asyncio.get_running_loop().run_in_executor(
                        self._prep_pool, self._prepare, task, "balance"
                    )
                    meta["rubric"] = rubric.id
                    meta["eval_type"] = "image_text_balance"
            elif task.direction is Direction.UND and any(r.text_gate for r in self.rubrics):
                samples.append(await self._text_first(client, sem, task))
        except GapevalError as exc:
            return Decision.abstain(exc.message)
        except Retryable as exc:
            self._usage.failures += 1
            return Decision.fail(str(exc))
        async with sem:
            try:
                two = self.settings.two_turn_for(task.direction)
                while len(samples) < self.settings.samples:
                    samples.append(await self._verdict(client, msgs, two, rubric))
                meta["samples"] = [int(p) for p, *_ in samples]
                meta["labels"] = [lab for *_, lab in samples]
                share = sum(p for p, *_ in samples) / len(samples)
                majority = share > 0.5
                meta["agreement"] = max(share, 1 - share)
                balance = self._balance(task.item) if rubric.id == "choice-gen" else None
                if balance is not None and model_text is not None and task.item.refs.choice:
                    from gapeval.judges.rules import extract_option

                    if extract_option(model_text) != task.item.refs.choice.upper():
                        # The text was wrong: does the image at least mark what the text chose?
                        bal = await self._verdict(
                            client, self.messages(balance, task.item, task, model_text), two, balance
                        )
                        meta["consistent_with_text"] = bal[0]
                score = share if self.settings.aggregation == "mean" else float(majority)
                raw = "\n---\n".join(r for _, _, raws, _ in samples for r in raws)
                return Decision(VerdictStatus.OK, majority, samples[-1][1], raw, score, meta)
            except Retryable as exc:
                self._usage.failures += 1
                return Decision.fail(str(exc))
            except GapevalError as exc:
                return Decision.abstain(exc.message)

    def judge(self, tasks: Sequence[JudgeTask], emit: Callable[[int, Decision], None]) -> None:
        """Judge concurrently, handing each decision to ``emit(index, decision)`` as it arrives.

        ``emit`` is always called on the calling thread, inside a running event loop (a notebook) too.
        """
        drive(lambda put: self._stream(tasks, put), emit)

    async def _stream(self, tasks: Sequence[JudgeTask], emit: Callable[[int, Decision], None]) -> None:
        client = ApiClient(self.settings, self._usage, self._notify)
        sem = asyncio.Semaphore(self.settings.concurrency)
        self._firsts: dict[tuple[str, str], Any] = {}
        start = time.perf_counter()

        async def run(i: int, t: JudgeTask) -> tuple[int, Decision]:
            return i, await self._one(client, sem, t)

        try:
            for fut in asyncio.as_completed([run(i, t) for i, t in enumerate(tasks)]):
                i, dec = await fut
                emit(i, dec)
        finally:
            await client.close()
            self._usage.wall_s += time.perf_counter() - start
