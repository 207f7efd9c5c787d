"""What every command shares: the consoles, one error line per user error, progress, options, printing.

A command resolves its options, makes one :mod:`gapeval.api` call and draws what it returns with the
renderers of :mod:`gapeval.report.render` (through :func:`show`), so the terminal shows the tables a
notebook and the reports show.
"""

from __future__ import annotations

import csv
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from gapeval.errors import GapevalError

if TYPE_CHECKING:
    from gapeval.report.tables import Table

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    help="Measure the understanding/generation gap of unified multimodal models.",
)
# Piped or captured output gets room for the wide tables; a terminal keeps its own width.
# Markup off: model answers, file names and messages (pip install 'gapeval[judge]') keep their brackets;
# styling goes through style= and Text, never through markup in data.
out = Console(width=None if sys.stdout.isatty() else 160, markup=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160, markup=False)
T = TypeVar("T")

CorrectByOpt = Annotated[
    str,
    typer.Option(
        help="With --judge-audit: direction (the judge's rates per direction), or category (also each "
        "category corrected with the judge's rates there, fitted on its own questions).",
    ),
]
RubricsOpt = Annotated[
    Path | None,
    typer.Option(
        help="A rubric directory of your own for VLM judges (e.g. the authors' judge, made by "
        "`gapeval rubrics import-authors`); replaces the built-in rubrics."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
FragilityOpt = Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")]
BootOpt = Annotated[int, typer.Option("--boot", help="Bootstrap resamples for the MIRT CIs (0: off).")]


def guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a user error becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except GapevalError as exc:
        err.print("error: " + exc.line(), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except (OSError, UnicodeError, csv.Error, RecursionError) as exc:
        # Input gapeval did not foresee still gets one line, never a traceback (OSError names its file).
        err.print(f"error: {exc.__class__.__name__}: {exc}", style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None


def say(line: str) -> None:
    """A plain line on stdout (data, never markup)."""
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def tell(line: str) -> None:
    """A plain line on stderr (progress, skipped items)."""
    err.print(line, markup=False, highlight=False, soft_wrap=True)


def show(*tables: Table) -> None:
    """Draw tables in the terminal with their captions, caveat notes and notes."""
    from gapeval.report.render import to_rich

    for table in tables:
        for part in to_rich(table):
            out.print(part)


def print_notes(notes: list[str]) -> None:
    """Notes a reader must see (different items, empty directions), on stderr."""
    for n in notes:
        tell("note: " + n)


def print_json(data: Any) -> None:
    """Machine-readable output."""
    out.print_json(data=data)


def print_judge_stats(stats: Mapping[str, Any]) -> None:
    """One line per judge: what it decided, reused and spent."""
    for jid, js in stats.items():
        line = (
            f"judge {jid}: {js.judged} decided, {js.cached} cached, {js.abstained} abstained, "
            f"{js.failed} failed"
        )
        if js.deduplicated:
            line += f", {js.deduplicated} identical outputs judged once"
        if js.fallbacks:
            line += (
                f"; {js.fallbacks} judged with a declared fallback rubric (no rubric names their subcategory)"
            )
        usage = js.usage
        if usage.requests:
            line += (
                f"; {usage.requests} requests, {usage.retries} retries, {usage.tokens_in} tokens in, "
                f"{usage.tokens_out} out"
            )
        say(line)


def judge_stats_json(stats: Mapping[str, Any]) -> dict[str, Any]:
    """Judge stats as JSON (the usage nested as it is in the result)."""
    return {k: asdict(v) for k, v in stats.items()}


def options(pairs: list[str] | None, flag: str = "--model-opt") -> dict[str, str]:
    """``KEY=VALUE`` options as a dict (one line naming the flag when one is not)."""
    opts = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GapevalError(f"option {pair!r} is not KEY=VALUE", field=flag)
        opts[key] = value
    return opts


class _Rate(ProgressColumn):
    """Outputs per second over rich's recent window (blank until it has one)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


def progress_bar() -> Progress:
    """The progress display (off without a terminal: see :class:`DirectionBars`)."""
    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


class DirectionBars:
    """One bar per direction (understanding, generation) for a run's outputs.

    Without a terminal (nohup, SLURM, CI) the bars are off, and a plain line per direction is printed
    every ``PLAIN_EVERY_S`` seconds and when a direction completes, so a long run never looks hung.
    """

    NAMES: ClassVar[dict[str, str]] = {"und": "understanding", "gen": "generation"}
    PLAIN_EVERY_S = 30.0

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {d: bar.add_task(n, total=None) for d, n in self.NAMES.items()}
        self.plain = not err.is_terminal
        self.done = dict.fromkeys(self.NAMES, 0)
        self.total: dict[str, int | None] = dict.fromkeys(self.NAMES)
        self.start = time.monotonic()
        self.last = dict.fromkeys(self.NAMES, self.start)

    def advance(self, direction: str, n: int) -> None:
        """``n`` more outputs of ``direction`` are done."""
        self.bar.advance(self.tasks[direction], n)
        if not self.plain:
            return
        self.done[direction] += n
        now, total = time.monotonic(), self.total[direction]
        finished = total is not None and self.done[direction] >= total
        if finished or now - self.last[direction] >= self.PLAIN_EVERY_S:
            self.last[direction] = now
            of = f"/{total} ({100 * self.done[direction] / max(total, 1):.0f}%)" if total else ""
            tell(f"{self.NAMES[direction]}: {self.done[direction]}{of} outputs, {now - self.start:.0f} s")

    def totals(self, totals: Mapping[str, int]) -> None:
        """The outputs the run holds per direction."""
        for direction, total in totals.items():
            self.bar.update(self.tasks[direction], total=total)
            self.total[direction] = total


@contextmanager
def direction_bars() -> Iterator[DirectionBars]:
    """Progress per direction for the duration of a run (its ``bar`` shows a judge's retries too)."""
    with progress_bar() as bar:
        yield DirectionBars(bar)


def notifier(bar: Progress, task: TaskID, what: str) -> Callable[[str], None]:
    """Show what a stalled or failing endpoint is doing: in the bar, or once per reason on stderr."""
    seen: set[str] = set()

    def notify(message: str) -> None:
        if err.is_terminal:
            bar.update(task, description=f"{what} ({message})")
            return
        reason = message.split(";")[0]
        if reason not in seen:
            seen.add(reason)
            tell(f"{what}: {message}")

    return notify
