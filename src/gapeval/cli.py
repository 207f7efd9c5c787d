"""The ``gapeval`` command: a thin shell that parses, calls the library, and prints."""

from __future__ import annotations

import csv
import io
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, TypeVar

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
from rich.table import Table
from rich.text import Text

from gapeval.errors import GapevalError

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

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"gapeval {version('gapeval')}", markup=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Measure the understanding/generation gap of unified multimodal models."""


def _guard(fn: Callable[[], T]) -> T:
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


class _Rate(ProgressColumn):
    """Outputs per second over rich's recent window (blank until it has one)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


def _progress() -> Progress:
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


class _DirectionBars:
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
        self.bar.advance(self.tasks[direction], n)
        if not self.plain:
            return
        self.done[direction] += n
        now, total = time.monotonic(), self.total[direction]
        finished = total is not None and self.done[direction] >= total
        if finished or now - self.last[direction] >= self.PLAIN_EVERY_S:
            self.last[direction] = now
            of = f"/{total} ({100 * self.done[direction] / max(total, 1):.0f}%)" if total else ""
            err.print(f"{self.NAMES[direction]}: {self.done[direction]}{of} outputs, "
                      f"{now - self.start:.0f} s", markup=False, highlight=False)  # fmt: skip

    def totals(self, totals: Mapping[str, int]) -> None:
        for direction, total in totals.items():
            self.bar.update(self.tasks[direction], total=total)
            self.total[direction] = total


def _notifier(bar: Progress, task: Any, what: str) -> Callable[[str], None]:
    """Show what a stalled or failing endpoint is doing: in the bar, or once per reason on stderr."""
    seen: set[str] = set()

    def notify(message: str) -> None:
        if err.is_terminal:
            bar.update(task, description=f"{what} ({message})")
            return
        reason = message.split(";")[0]
        if reason not in seen:
            seen.add(reason)
            err.print(f"{what}: {message}", markup=False, highlight=False, soft_wrap=True)

    return notify


def _options(pairs: list[str] | None, flag: str = "--model-opt") -> dict[str, str]:
    opts = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise GapevalError(f"option {pair!r} is not KEY=VALUE", field=flag)
        opts[key] = value
    return opts


def _fmt(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def print_leaderboard(
    rows: list[Any], title: str = "GapEval leaderboard (x100)", platform: str | None = None
) -> None:
    """Rich table of leaderboard rows (data is printed as text, never as markup)."""
    table = Table(title=title, title_justify="left")
    for col, just in [
        ("model", "left"),
        ("category", "left"),
        ("N", "right"),
        ("N und/gen", "right"),
        ("unsup", "right"),
        ("fail", "right"),
        ("Succ", "right"),
        ("Und", "right"),
        ("Gen", "right"),
        ("Gap", "right"),
        ("±frag", "right"),
        ("Cons", "right"),
    ]:
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    last = None
    for r in rows:
        if last is not None and r.model != last:
            table.add_section()
        last = r.model
        table.add_row(
            Text(r.model),
            Text(r.category),
            str(r.n_paired),
            f"{r.und_n}/{r.gen_n}",
            str(r.unsupported),
            str(r.failed),
            _fmt(r.succ),
            _fmt(r.und),
            _fmt(r.gen),
            _fmt(r.gap),
            _fmt(r.gap_fragility, 2),
            _fmt(r.consistency),
        )
    out.print(table)
    out.print(
        "N: items decided both ways (per direction: N und/gen) · unsup/fail: outputs the model cannot "
        "produce / failed to · Succ: both directions right · Und/Gen: accuracy per direction · Gap: "
        "paper-compatible Gap Score · ±frag: its largest change under 1e-6 input noise · "
        "Cons: directions agree",
        style="dim",
    )
    for judges in dict.fromkeys(f"{r.model}: judged by {r.judges}" for r in rows if r.category == "Overall"):
        out.print(judges, style="dim", markup=False)
    if platform:
        out.print(platform, style="dim", markup=False)


def print_notes(notes: list[str]) -> None:
    """Notes a reader must see (different items, empty directions), on stderr."""
    for n in notes:
        err.print("note: " + n, markup=False, highlight=False, soft_wrap=True)


@app.command("run")
def run_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name or path (authors' layout folder, or .jsonl).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec, e.g. replay:janus-pro.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (same spec resumes).")
    ] = None,
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge chain, in order (default: the suite's).")
    ] = None,
    seed: int = 0,
    samples_und: Annotated[int | None, typer.Option(help="Answers per item (default: the suite's).")] = None,
    samples_gen: Annotated[int | None, typer.Option(help="Images per item (default: the suite's).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Requests per model call (default: the adapter's).")
    ] = None,
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Adapter option KEY=VALUE.")
    ] = None,
    judge_opt: Annotated[
        list[str] | None, typer.Option("--judge-opt", help="Judge option KEY=VALUE (e.g. protocol=paper).")
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(help="OpenAI-compatible endpoint of a VLM judge (hosted, OpenRouter, vLLM)."),
    ] = None,
    executor: Annotated[
        str, typer.Option(help="Executor: local, or ray (pip install 'gapeval[ray]').")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster: auto, or ray://HOST:PORT (default: start Ray here).")
    ] = None,
    replicas: Annotated[int | None, typer.Option(help="Model replicas on Ray.")] = None,
    gpus_per_replica: Annotated[float | None, typer.Option(help="GPUs per replica on Ray.")] = None,
    executor_opt: Annotated[
        list[str] | None, typer.Option("--executor-opt", help="Executor option KEY=VALUE (runtime_env=JSON).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Display name of this run in tables.")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Load the good items, list the bad ones.")] = False,
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    html: Annotated[
        bool, typer.Option("--html/--no-html", help="Write the HTML report (RUN/report).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run a model on a suite, judge it, print the leaderboard row, and write the HTML report."""
    from gapeval import api

    def go() -> None:
        with _progress() as bar:
            bars = _DirectionBars(bar)
            task = bars.tasks["gen"]
            res = api.run(
                suite,
                model,
                out=out_dir,
                seed=seed,
                samples_und=samples_und,
                samples_gen=samples_gen,
                judges=judge or None,
                judge_options=_judge_options(judge_opt, base_url),
                model_options=_options(model_opt),
                batch_size=batch_size,
                executor=executor,
                executor_options=_executor_options(executor_opt, ray_address, replicas, gpus_per_replica),
                label=label,
                skip_invalid=skip_invalid,
                progress=bars.advance,
                on_total=bars.totals,
                notify=_notifier(bar, task, "judging"),
            )
        for s in res.suite.skipped:
            err.print(f"skipped: {s.line()}", markup=False, highlight=False, soft_wrap=True)
        if res.stats.failed:
            why = "; ".join(res.stats.reasons[:3])
            err.print(f"{res.stats.failed} outputs failed; first reasons: {why}", style="yellow",
                      markup=False, highlight=False, soft_wrap=True)  # fmt: skip
        scored = api.score([res.path], method="reference", fragility_n=fragility_n)
        site = api.report_site([res.path], result=scored, suite=res.suite) if html else None
        summary = {
            "run": str(res.path),
            "resumed": res.resumed,
            "model_loaded": res.model_loaded,
            "outputs": vars(res.stats),
            "judges": {k: vars(v) for k, v in res.judge_stats.items()},
            "judges_from": res.judges_from,
            "skipped": [s.line() for s in res.suite.skipped],
            "html_report": str(site.index) if site else None,
            **scored.to_json(),
        }
        if as_json:
            out.print_json(data=summary)
            return
        st = res.stats
        out.print(
            f"{'resumed' if res.resumed else 'new'} run: {st.done} outputs done, {st.failed} failed, "
            f"{st.unsupported} unsupported, {st.skipped_done} already done",
            markup=False,
        )
        if res.judges_from == "suite":
            out.print(f"judges: {', '.join(res.judges)} (the suite's own; -j to choose)", markup=False)
        _print_judge_stats(res.judge_stats)
        print_leaderboard(scored.leaderboard, platform=scored.platform)
        print_notes(scored.notes)
        out.print(f"run directory: {res.path}", markup=False)
        if site:
            out.print(f"html report: {site.index}", markup=False)

    _guard(go)


def _judge_options(given: list[str] | None, base_url: str | None) -> dict[str, str]:
    """``--judge-opt`` plus ``--base-url``, its shorthand."""
    opts = _options(given, "--judge-opt")
    if base_url is not None:
        opts["base_url"] = base_url
    return opts


def _executor_options(
    given: list[str] | None, address: str | None, replicas: int | None, gpus: float | None
) -> dict[str, str]:
    """``--executor-opt`` plus the Ray flags that are shorthands for its options."""
    opts = _options(given, "--executor-opt")
    named = {"address": address, "replicas": replicas, "gpus_per_replica": gpus}
    opts.update({k: str(v) for k, v in named.items() if v is not None})
    return opts


def _print_judge_stats(stats: dict[str, Any]) -> None:
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
        if js.requests:
            line += (
                f"; {js.requests} requests, {js.retries} retries, {js.tokens_in} tokens in, "
                f"{js.tokens_out} out"
            )
        out.print(line, markup=False)


def _platform_cache() -> Path:
    from gapeval.suites import data_home

    return data_home() / "platform-check.json"


@app.command("judge")
def judge_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    judge: Annotated[
        list[str], typer.Option("--judge", "-j", help="Judge chain, in order (e.g. openai:gpt-5-mini).")
    ],
    suite: Annotated[str | None, typer.Option(help="Suite location, if it moved since the run.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint (hosted, OpenRouter, vLLM).")
    ] = None,
    api_key_env: Annotated[str | None, typer.Option(help="Environment variable holding the API key.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Concurrent judge requests.")] = None,
    samples: Annotated[
        int | None, typer.Option(help="Independent judge calls per output (paper: 10).")
    ] = None,
    two_turn: Annotated[
        bool, typer.Option(help="Ask again ('Are you sure?') and keep the second verdict.")
    ] = False,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="Judging protocol: default (1 call) or paper (two turns for text, 10 calls averaged)."
        ),
    ] = None,
    judge_opt: Annotated[
        list[str] | None, typer.Option("--judge-opt", help="Judge option KEY=VALUE.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Judge a run's stored outputs (never re-runs the model; cached verdicts are reused)."""
    from gapeval import api

    def go() -> None:
        opts = _options(judge_opt)
        for key, value in (
            ("base_url", base_url),
            ("api_key_env", api_key_env),
            ("concurrency", concurrency),
            ("samples", samples),
        ):
            if value is not None:
                opts[key] = str(value)
        if two_turn:
            opts["two_turn"] = "all"
        if protocol is not None:
            opts["protocol"] = protocol
        with _progress() as bar:
            task = bar.add_task("judging", total=None)
            stats = api.judge(
                run_dir,
                judge,
                suite_source=suite,
                options=opts,
                progress=lambda n: bar.advance(task, n),
                notify=_notifier(bar, task, "judging"),
            )
        data = {k: vars(v) for k, v in stats.items()}
        if as_json:
            out.print_json(data=data)
            return
        _print_judge_stats(stats)

    _guard(go)


@app.command("agreement")
def agreement_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding the judges' verdicts.")],
    labels: Annotated[Path | None, typer.Option(help="Human labels CSV: item_id, direction, label.")] = None,
    judge: Annotated[str, typer.Option("--judge", "-j", help="Judge id to evaluate.")] = "rules",
    versus: Annotated[
        str | None, typer.Option("--vs", help="Second judge id (judge-vs-judge agreement).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Agreement of a judge with human labels (kappa, accuracy, confusion, per category) or another judge."""
    from gapeval.judges.agreement import agreement, judge_labels, read_labels
    from gapeval.store import RunStore

    def go() -> None:
        if labels is None and versus is None:
            raise GapevalError("give --labels CSV or --vs JUDGE", field="--labels")
        with RunStore.open(run_dir) as store:
            ours = judge_labels(store, judge)
            theirs = read_labels(labels) if labels is not None else judge_labels(store, str(versus))
            cats = {k: c.value for k, (c, _) in store.items().items()}
        res = agreement(ours, theirs, cats)
        if as_json:
            out.print_json(data=res.model_dump())
            return
        other = str(labels) if labels is not None else versus
        out.print(
            f"{judge} vs {other}: n={res.n}, accuracy {res.accuracy:.3f}, Cohen's kappa {res.kappa:.3f}, "
            f"Pearson r {res.pearson:.3f}"
        )
        out.print(f"confusion (rows {judge} pass/fail, columns {other} pass/fail): {res.confusion}")
        t = Table(title="per category", title_justify="left")
        for col in ("category", "n", "accuracy", "kappa"):
            t.add_column(col, justify="left" if col == "category" else "right")
        for c in res.per_category:
            t.add_row(c.category, str(c.n), f"{c.accuracy:.3f}", _fmt(c.kappa, 3))
        out.print(t)

    _guard(go)


def print_mirt(analysis: Any) -> None:
    """Rich table of the identified gap per model and group."""
    table = Table(
        title=f"Identified gap (paired-question MIRT, logits; {int(analysis.ci * 100)}% intervals: from the "
        f"observed information, and bootstrap over {analysis.n_boot} resamples of questions)",
        title_justify="left",
    )
    for col in (
        "model",
        "group",
        "θ und",
        "θ gen",
        "gap",
        "CI (±1.96 SE)",
        "boot CI",
        "0-1",
        "n10/n01",
        "p (Holm)",
    ):
        table.add_column(col, justify="left" if col in ("model", "group") else "right")
    last = None
    for e in analysis.estimates:
        if last is not None and e.group != last and e.group == "Overall":
            table.add_section()
        last = e.group
        ci = "–" if e.ci_low is None else f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}]"
        wald = "–" if e.wald_low is None else f"[{e.wald_low:+.2f}, {e.wald_high:+.2f}]"
        table.add_row(
            e.model,
            e.group,
            f"{e.theta_und:+.2f}",
            f"{e.theta_gen:+.2f}",
            f"{e.gap:+.3f}" + ("*" if e.at_boundary else ""),
            wald,
            ci,
            f"{e.gap01:.3f}",
            f"{e.n10}/{e.n01}",
            f"{e.p_adjusted:.3g}",
        )
    out.print(table)
    bad = [f for f in analysis.fits if not f.converged]
    fit0 = analysis.fits[0]
    out.print(
        f"fit: {fit0.structure} question effects, sd und {fit0.sd_und:.2f}, sd gen {fit0.sd_gen:.2f}, "
        f"rho {fit0.rho:.2f}; max |gradient| {max(f.grad_norm for f in analysis.fits):.1e}"
        + (f"; NOT CONVERGED: {', '.join(f.group for f in bad)}" if bad else "; all fits converged")
        + (
            ""
            if analysis.ability_correlation is None
            else f"; corr(θ und, θ gen) across models {analysis.ability_correlation:.2f}"
        ),
        style="dim",
    )
    out.print(
        "gap > 0: understanding ahead. p: McNemar exact test of no gap on the discordant questions, "
        "Holm-adjusted over all models and groups. 0-1: |gap|/(1+|gap|), the paper's scale."
        + (
            " *: a direction was answered all right (or all wrong), so no finite estimate exists; the weak "
            "N(0, 10²) ability prior bounds it: read its sign, not its size."
            if any(e.at_boundary for e in analysis.estimates)
            else ""
        ),
        style="dim",
    )


@app.command("score")
def score_cmd(
    runs: Annotated[list[Path] | None, typer.Argument(help="Run directories (one model each).")] = None,
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge ids, by precedence.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    method: Annotated[
        str, typer.Option(help="mirt (identified, with CIs), reference (the paper's scorer) or both.")
    ] = "mirt",
    coupling: Annotated[
        str, typer.Option(help="reference method: categories (released) or models (appendix).")
    ] = "categories",
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    n_boot: Annotated[
        int, typer.Option("--boot", help="Bootstrap resamples for the MIRT CIs (0: off).")
    ] = 200,
    responses: Annotated[Path | None, typer.Option(help="Score a tidy response CSV instead of runs.")] = None,
    export: Annotated[Path | None, typer.Option(help="Also write the response tensor as tidy CSV.")] = None,
    unsupported_as_wrong: Annotated[
        bool,
        typer.Option(help="Count outputs a model cannot produce (e.g. edits) as wrong, not missing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Score runs from their stored verdicts: accuracies, joint tables, and the gap."""
    from gapeval import api
    from gapeval.scoring import responses as resp

    def go() -> None:
        if fmt not in ("table", "json", "csv"):
            raise GapevalError(f"unknown format {fmt!r}", field="--format")
        for run_dir in runs or []:
            if export is not None and export.resolve().is_relative_to(run_dir.resolve()):
                raise GapevalError(
                    "--export must not write inside a run directory", file=export, field="--export"
                )
        result = api.score(
            runs or [],
            judges=judge,
            method=method,  # type: ignore[arg-type]
            coupling=coupling,  # type: ignore[arg-type]
            fragility_n=fragility_n,
            n_boot=n_boot,
            responses=responses,
            unsupported_as_wrong=unsupported_as_wrong,
        )
        if export is not None:
            data = result.responses
            if data is None:
                data = api.score(runs or [], judges=judge, method="mirt", n_boot=0).responses
            if data is None:
                raise GapevalError("nothing to export: no decided responses", field="--export")
            resp.write_csv(data, export)
        rows, analysis = result.leaderboard, result.mirt
        if as_json or fmt == "json":
            out.print_json(data=result.to_json())
        elif fmt == "csv":
            buf = io.StringIO()
            if analysis is not None:
                fields = list(analysis.estimates[0].model_dump())
                writer = csv.DictWriter(buf, fieldnames=fields)
                writer.writeheader()
                for e in analysis.estimates:
                    writer.writerow(e.model_dump())
            elif rows:
                fields = [f for f in rows[0].model_dump() if f != "joint"] + ["p11", "p10", "p01", "p00"]
                writer = csv.DictWriter(buf, fieldnames=fields)
                writer.writeheader()
                for r in rows:
                    d = r.model_dump()
                    joint = d.pop("joint")
                    writer.writerow({**d, **dict(zip(["p11", "p10", "p01", "p00"], joint, strict=True))})
            sys.stdout.write(buf.getvalue())
        else:
            if rows:
                title = "GapEval leaderboard (x100)" + (
                    " — models-coupled Gap (appendix reading)" if coupling == "models" else ""
                )
                print_leaderboard(rows, title, platform=result.platform)
            if analysis is not None:
                print_mirt(analysis)
        print_notes(result.notes)

    _guard(go)


@app.command("correlate")
def correlate_cmd(
    scores: Annotated[Path, typer.Argument(help="CSV: a model column, one column per external score.")],
    runs: Annotated[list[Path] | None, typer.Option("--run", help="Runs to compute the gaps from.")] = None,
    responses: Annotated[
        Path | None, typer.Option(help="Tidy response CSV to compute the gaps from.")
    ] = None,
    n_boot: Annotated[int, typer.Option("--boot", help="Bootstrap resamples over models.")] = 2000,
    as_json: JsonOpt = False,
) -> None:
    """Relate gaps to external benchmark scores (Spearman, Kendall, bootstrap CIs)."""
    from gapeval import api
    from gapeval.scoring import responses as resp
    from gapeval.scoring.correlate import correlate, read_scores
    from gapeval.scoring.mirt import fit

    def go() -> None:
        columns, table = read_scores(scores)
        if runs or responses is not None:
            data = (
                resp.read_csv(responses)
                if responses is not None
                else resp.from_records(api.read_runs(runs or []))
            )
            res = fit(data, with_se=False)
            gaps = {m: float(g) for m, g in zip(data.models, res.gap, strict=True)}
        elif "gap" in columns:
            gaps = {m: v["gap"] for m, v in table.items() if "gap" in v}
        else:
            raise GapevalError("no gaps: give --run/--responses or a 'gap' column", file=scores, field="gap")
        result = correlate(gaps, table, columns, n_boot=n_boot, source=scores)
        if as_json:
            out.print_json(data=[r.model_dump() for r in result])
            return
        t = Table(title="Gap vs external scores", title_justify="left")
        for col in ("score", "models", "Spearman", "95% CI", "p", "Kendall", "95% CI ", "p "):
            t.add_column(col, justify="left" if col == "score" else "right")
        for r in result:
            t.add_row(
                r.score,
                str(r.n_models),
                f"{r.spearman:+.3f}",
                f"[{r.spearman_ci[0]:+.2f}, {r.spearman_ci[1]:+.2f}]",
                f"{r.spearman_p:.3g}",
                f"{r.kendall:+.3f}",
                f"[{r.kendall_ci[0]:+.2f}, {r.kendall_ci[1]:+.2f}]",
                f"{r.kendall_p:.3g}",
            )
        out.print(t)

    _guard(go)


@app.command("gap")
def gap_cmd(
    joint_json: Annotated[Path, typer.Argument(help="Authors' format: {model: [[p11,p10,p01,p00], ...]}.")],
    coupling: Annotated[
        str, typer.Option(help="categories (released scorer) or models (appendix).")
    ] = "categories",
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    workers: int = 2,
    as_json: JsonOpt = False,
) -> None:
    """Paper-compatible Gap Scores from joint tables; writes <stem>_gapres.json like the authors' scorer."""
    from gapeval import api
    from gapeval.scoring.reference_gap import (
        fit_many,
        fragility,
        read_authors_input,
        reference_gap_models_coupled,
        write_authors_output,
    )

    def go() -> None:
        tables = read_authors_input(joint_json)
        if coupling == "models":
            results = reference_gap_models_coupled(tables)
        elif coupling == "categories":
            results = dict(zip(tables, fit_many(list(tables.values()), workers=workers), strict=True))
        else:
            raise GapevalError(f"unknown coupling {coupling!r}", field="--coupling")
        frag = (
            {m: fragility(tables[m], results[m], n=fragility_n, workers=workers) for m in tables}
            if fragility_n > 0 and coupling == "categories"
            else {}
        )
        path = write_authors_output(joint_json, results)
        if as_json:
            out.print_json(
                data={
                    "output": str(path),
                    "results": {m: r.model_dump() for m, r in results.items()},
                    "fragility": {m: f.model_dump() for m, f in frag.items()},
                }
            )
            return
        table = Table(
            title="Paper-compatible Gap Score"
            + (" (models-coupled, appendix reading)" if coupling == "models" else ""),
            title_justify="left",
        )
        table.add_column("model")
        table.add_column("gaps per row (±fragility)")
        table.add_column("gap_mean", justify="right")
        for m, r in results.items():
            f = frag.get(m)
            cells = [f"{g:.6f}" + (f" ±{f.max_abs_change[k]:.4f}" if f else "") for k, g in enumerate(r.gaps)]
            table.add_row(
                m, "  ".join(cells), f"{r.gap_mean:.6f}" + (f" ±{f.mean_max_abs_change:.4f}" if f else "")
            )
        out.print(table)
        if frag:
            out.print(
                f"±: largest change over {fragility_n} refits with N(0, 1e-6) noise on the inputs",
                style="dim",
            )
        out.print(api.platform_note(), style="dim", markup=False)
        out.print(f"wrote {path}", markup=False)

    _guard(go)


@app.command("platform-check")
def platform_check_cmd(
    refresh: Annotated[bool, typer.Option(help="Fit again even if this machine was checked.")] = False,
    workers: int = 2,
    as_json: JsonOpt = False,
) -> None:
    """Fit the authors' published Gap Score vectors here and say whether they reproduce bit for bit."""
    from gapeval.scoring.reference_gap import _torch
    from gapeval.scoring.reference_platform import check_platform, describe

    def go() -> None:
        _torch()  # one clear line when the extra is missing
        check = check_platform(_platform_cache(), workers=workers, refresh=refresh)
        if as_json:
            out.print_json(data={**check.model_dump(), "reproduces": check.reproduces})
            return
        out.print(describe(check))
        for name, diff in sorted(check.differing.items()):
            out.print(f"  {name:16s} largest difference {diff:.6f}")
        out.print(
            "fingerprint: " + ", ".join(f"{k}={v}" for k, v in check.fingerprint.items() if v), style="dim"
        )

    _guard(go)


@app.command("suites")
def suites_cmd(as_json: JsonOpt = False) -> None:
    """List the suites gapeval knows by name (built in and plugins)."""
    from gapeval.suites import available_suites

    found = available_suites()
    if as_json:
        out.print_json(data=found)
        return
    for name, desc in found.items():
        out.print(Text.assemble((name, "bold"), "  ", desc))
    out.print("Any folder in the authors' layout, or a .jsonl suite file, works as a suite too.", style="dim")


@app.command("models")
def models_cmd(as_json: JsonOpt = False) -> None:
    """List the model families, judges and executors (each loads lazily; extras stay optional)."""
    from gapeval.models.base import available_models
    from gapeval.registry import EXECUTORS, JUDGES, MODELS

    def listing(reg: Any) -> dict[str, dict[str, str | None]]:
        return {
            n: {"description": e.description, "extra": e.extra, "example": e.example, "does": e.does}
            for n, e in reg.entries().items()
        }

    models = listing(MODELS)
    models["py"] = {
        "description": available_models()["py"],
        "extra": None,
        "example": "py:my_adapter.py:MyModel",
        "does": "what its class declares",
    }
    data = {"models": models, "judges": listing(JUDGES), "executors": listing(EXECUTORS)}
    if as_json:
        out.print_json(data=data)
        return
    for kind, entries in data.items():
        table = Table(title=kind, title_justify="left", show_lines=False)
        columns = (
            ["name", "what", "does", "needs", "example"] if kind == "models" else ["name", "what", "needs"]
        )
        for col in columns:
            table.add_column(col, overflow="fold")
        for name, e in entries.items():
            needs = f"pip install 'gapeval[{e['extra']}]'" if e["extra"] else ""
            cells = {
                "name": name,
                "what": e["description"],
                "does": e["does"],
                "needs": needs,
                "example": e["example"],
            }
            table.add_row(*(Text(str(cells[c] or "")) for c in columns))
        out.print(table)


@app.command("validate")
def validate_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name or path.")],
    skip_invalid: Annotated[bool, typer.Option(help="List every bad item instead of stopping.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load a suite and report what it holds (and, with --skip-invalid, what it skipped)."""
    from gapeval.suites import load_suite

    def go() -> None:
        s = load_suite(suite, skip_invalid=skip_invalid)
        counts = {c.value: n for c, n in s.category_counts().items()}
        if as_json:
            out.print_json(
                data={
                    "name": s.name,
                    "items": len(s.items),
                    "content_hash": s.content_hash(),
                    "categories": counts,
                    "skipped": [k.line() for k in s.skipped],
                }
            )
            return
        out.print(f"{s.name}: {len(s.items)} items, hash {s.content_hash()[:12]}")
        for c, n in counts.items():
            out.print(f"  {c}: {n}")
        for k in s.skipped:
            err.print(f"skipped: {k.line()}", markup=False, highlight=False, soft_wrap=True)

    _guard(go)


@app.command("fetch")
def fetch_cmd(name: Annotated[str, typer.Argument(help="What to fetch: gapeval.")] = "gapeval") -> None:
    """Download the public GapEval snapshot into the data home (needs network and gapeval[hub])."""
    from gapeval.suites import data_home
    from gapeval.suites.official import HUB_REPO, fetch

    def go() -> None:
        if name != "gapeval":
            raise GapevalError(f"unknown dataset {name!r}; available: gapeval", field="name")
        path = fetch(data_home() / "gapeval")
        out.print(f"fetched {HUB_REPO} into {path}")

    _guard(go)


@app.command("demo")
def demo_cmd(
    suite: Annotated[str, typer.Option(help="Built-in suite to run.")] = "shapes-v1",
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec.")] = "toy",
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (same spec resumes).")
    ] = None,
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    as_json: JsonOpt = False,
) -> None:
    """The main job, offline on a CPU: the built-in model on the built-in world, judged exactly."""
    from gapeval import api

    def go() -> None:
        with _progress() as bar:
            bars = _DirectionBars(bar)
            res = api.demo(
                suite,
                model,
                out=out_dir,
                fragility_n=fragility_n,
                progress=bars.advance,
                on_total=bars.totals,
            )
        if as_json:
            paths = {"run": str(res.run.path), "report": str(res.report), "html_report": str(res.site.index)}
            out.print_json(data={**paths, **res.score.to_json()})
            return
        print_leaderboard(res.score.leaderboard, f"{model} on {suite} (x100)", platform=res.score.platform)
        if res.score.mirt is not None:
            print_mirt(res.score.mirt)
        print_notes(res.score.notes)
        out.print(f"run directory: {res.run.path}", markup=False)
        out.print(f"report: {res.report}", markup=False)
        out.print(f"html report: {res.site.index}", markup=False)

    _guard(go)


@app.command("report")
def report_cmd(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run directories (several: compared side by side).")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Folder of the HTML report (default: RUN/report).")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind", "-k", help="Also write these per-run reports (registry names, e.g. markdown)."
        ),
    ] = None,
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    n_boot: Annotated[int, typer.Option("--boot", help="Bootstrap resamples for the MIRT CIs.")] = 200,
) -> None:
    """Write the HTML report of runs from their stored verdicts (never re-runs or re-judges).

    The folder holds index.html (open it from disk), provenance.html, tables/*.csv, figures/*.svg|png
    and summary.md.
    """
    from gapeval import api

    def go() -> None:
        result = api.score(run_dirs, method="both", fragility_n=fragility_n, n_boot=n_boot)
        for run_dir in run_dirs if kind else []:
            for path in api.report(run_dir, kinds=kind or [], fragility_n=fragility_n, n_boot=n_boot):
                out.print(f"report: {path}", markup=False)
        site = api.report_site(run_dirs, out=out_dir, result=result)
        out.print(f"html report: {site.index}", markup=False)

    _guard(go)


@app.command("curve")
def curve_cmd(
    checkpoints: Annotated[
        list[Path],
        typer.Argument(help="Checkpoints, or a training folder of step_* files (gapeval toy train -o)."),
    ],
    suite: Annotated[str, typer.Option(help="Suite to evaluate every checkpoint on.")] = "shapes-v1",
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the runs, table and figure.")
    ] = Path("curve"),
    model: Annotated[str, typer.Option(help="Model spec; {checkpoint} is replaced by each path.")] = (
        "toy:{checkpoint}"
    ),
    fraction: Annotated[
        float, typer.Option(help="Share of the final accuracy that counts as reached.")
    ] = 0.9,
    n_boot: Annotated[int, typer.Option("--boot", help="Bootstrap resamples (gap and lag intervals).")] = 200,
    samples_gen: Annotated[int | None, typer.Option(help="Images per item (default: the suite's).")] = None,
    seed: Annotated[int, typer.Option(help="Run seed, the same for every checkpoint.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Both directions over a checkpoint series: accuracy curves, the gap per checkpoint, and the lag."""
    from gapeval.experiments.curve import curve

    def go() -> None:
        res = curve(checkpoints, suite=suite, out=out_dir, model=model, fraction=fraction, n_boot=n_boot,
                    samples_gen=samples_gen, seed=seed,
                    progress=None if as_json else lambda line: err.print(line, markup=False))  # fmt: skip
        if as_json:
            out.print_json(data=res.model_dump())
            return
        table = Table(
            title=f"{len(res.points)} checkpoints on {res.suite} (accuracy x100)", title_justify="left"
        )
        for col in ("step", "Und", "Gen", "N und", "N gen", "gap (logits)", "interval"):
            table.add_column(col, justify="right")
        for p in res.points:
            ci = "–" if p.gap_low is None or p.gap_high is None else f"{p.gap_low:+.2f} to {p.gap_high:+.2f}"
            table.add_row(str(p.step), _fmt_pct(p.und), _fmt_pct(p.gen), str(p.und_n), str(p.gen_n),
                          "–" if p.gap is None else f"{p.gap:+.2f}", ci)  # fmt: skip
        out.print(table)
        if res.lag is not None:
            lag = res.lag
            ci = "" if lag.low is None else f" (95% interval {lag.low:+.0f} to {lag.high:+.0f} steps"
            ci += "" if lag.share_positive is None else f"; understanding first in {lag.share_positive:.0%}"
            ci += "" if lag.low is None else f" of {lag.n_boot} item resamples)"
            out.print(
                f"lag at {lag.fraction:.0%} of final accuracy: understanding at step {lag.und_step:.0f}, "
                f"generation at step {lag.gen_step:.0f}: {lag.lag:+.0f} steps{ci}",
                markup=False,
            )
        for f in res.files:
            out.print(f"wrote {f}", markup=False)

    _guard(go)


@app.command("sweep")
def sweep_cmd(
    spec: Annotated[Path, typer.Argument(help="Sweep spec (YAML): suites, models, seeds, judges, executor.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder of the sweep's runs.")] = Path("sweep"),
    html: Annotated[bool, typer.Option("--html/--no-html", help="Write one HTML report per suite.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Many runs (models x suites x judges x seeds) as one resumable job, ending with one leaderboard."""
    from gapeval.sweep import load_sweep, sweep

    def go() -> None:
        loaded = load_sweep(spec)
        say = None if as_json else lambda line: err.print(line, markup=False)
        res = sweep(loaded, out_dir, progress=say, report=html)
        if as_json:
            scores = [{"suite": s, "judges": list(c), **sc.to_json()} for (s, c), sc in res.scores.items()]
            out.print_json(data={
                "runs": [{**vars(r), "path": str(r.path)} for r in res.runs],
                "scores": scores,
                "reports": {k: str(v) for k, v in res.reports.items()},
            })  # fmt: skip
            return
        for (suite, chain), scored in res.scores.items():
            title = f"{loaded.name}: {suite}, judged by {' > '.join(chain)}"
            print_leaderboard(scored.leaderboard, title=f"{title} (x100)", platform=scored.platform)
            print_notes(scored.notes)
        for suite, index in res.reports.items():
            out.print(f"html report ({suite}): {index}", markup=False)

    _guard(go)


knowledge_app = typer.Typer(
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Teach knowledge through one direction and measure whether it reaches the other.",
)
app.add_typer(knowledge_app, name="knowledge")


def _knowledge(experiment: str, spec: Path | None, out_dir: Path | None, report: bool, as_json: bool) -> None:
    from gapeval.experiments.knowledge import PROBES, run_experiment

    def go() -> None:
        say = None if as_json else lambda line: err.print(line, markup=False)
        res = run_experiment(experiment, spec, out=out_dir, report=report, progress=say)  # type: ignore[arg-type]
        if as_json:
            out.print_json(data=res.model_dump())
            return
        name = res.spec["name"]
        title = f"knowledge {experiment}: {name} [{res.spec_hash[:12]}]"
        table = Table(title=f"{title} (accuracy x100, * trained; change from baseline, 95% interval)",
                      title_justify="left")  # fmt: skip
        for col in ("arm", "probe", "Und", "Und change", "Gen", "Gen change"):
            table.add_column(col, justify="left" if col in ("arm", "probe") else "right")
        for probe in PROBES[experiment]:
            for arm in dict.fromkeys(c.arm for c in res.cells):
                row = [c for c in res.cells if c.arm == arm and c.probe == probe]
                if not row:
                    continue
                by = {c.direction: c for c in row}
                table.add_row(arm if arm == "baseline" else f"train {arm}", probe,
                              *(x for d in ("und", "gen") for x in _cell(by.get(d))))  # fmt: skip
            table.add_section()
        out.print(table)
        first = PROBES[experiment][0]
        for c in res.cells:
            if c.probe == first and c.verdict:
                p = "" if c.p is None else f", p = {c.p:.3f}"
                change = _fmt_delta(c.delta, c.low, c.high)
                out.print(f"train {c.arm} -> {c.direction} evaluated: {change}{p}: {c.verdict}", markup=False)
        sec = res.seconds
        reused = f"; the arms took {sec['arms']:.0f} s when trained" if sec["arms"] > sec["train"] + 1 else ""
        out.print(f"took {sec['total']:.0f} s (training {sec['train']:.0f} s, evaluation {sec['eval']:.0f} s"
                  f"{reused})", markup=False)  # fmt: skip
        for f in res.files:
            out.print(f"wrote {f}", markup=False)

    _guard(go)


def _fmt_delta(delta: float | None, low: float | None, high: float | None) -> str:
    if delta is None:
        return "–"
    ci = "" if low is None or high is None else f" [{100 * low:+.1f}, {100 * high:+.1f}]"
    return f"{100 * delta:+.1f}{ci}"


def _cell(c: Any) -> tuple[str, str]:
    if c is None:
        return "–", "–"
    mark = " *" if c.trained else ""
    return _fmt_pct(c.acc) + mark, _fmt_delta(c.delta, c.low, c.high)


SpecArg = Annotated[
    Path | None,
    typer.Argument(help="Experiment spec (YAML); default: the built-in one on the built-in model."),
]
KnowOut = Annotated[
    Path | None, typer.Option("--out", "-o", help="Experiment folder (default knowledge-EXPERIMENT).")
]
ReportOpt = Annotated[
    bool, typer.Option("--html/--no-html", help="Also write the HTML report over every run.")
]


@knowledge_app.command("inject")
def knowledge_inject(spec: SpecArg = None, out_dir: KnowOut = None, html: ReportOpt = True,
                     as_json: JsonOpt = False) -> None:  # fmt: skip
    """Teach new entities through understanding, generation or both; evaluate both directions."""
    _knowledge("inject", spec, out_dir, html, as_json)


@knowledge_app.command("edit")
def knowledge_edit(spec: SpecArg = None, out_dir: KnowOut = None, html: ReportOpt = True,
                   as_json: JsonOpt = False) -> None:  # fmt: skip
    """Change known facts through one direction; check efficacy, generalisation and locality both ways."""
    _knowledge("edit", spec, out_dir, html, as_json)


def _fmt_pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out_file: Annotated[
        Path, typer.Option("--out", "-o", help="The bundle file to write (e.g. run.gapeval).")
    ],
) -> None:
    """Pack a run into one file others can score, re-judge and report on without the model.

    It holds the manifest, every output and image, every verdict with its judge id, rubric hash and raw
    reply, and the suite's items and images.
    """
    from gapeval import api

    def go() -> None:
        path = api.export(run_dir, out_file)
        out.print(f"bundle: {path} ({path.stat().st_size / 2**20:.1f} MiB)", markup=False)

    _guard(go)


@app.command("serve")
def serve_cmd(
    model: Annotated[str, typer.Argument(help="Model spec to serve (toy, py:FILE.py:Class, ...).")],
    port: Annotated[int, typer.Option(help="Port (0: any free one, printed).")] = 8900,
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Adapter option KEY=VALUE.")
    ] = None,
) -> None:
    """Serve a model over the gapeval model-server protocol (run it with -m http://HOST:PORT)."""
    from gapeval.serve.server import ModelServer

    def go() -> None:
        server = ModelServer(model, _options(model_opt), host=host, port=port)
        out.print(f"serving {model} on {server.url}", markup=False)
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()

    _guard(go)


toy_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True, help="The built-in unified model.")
app.add_typer(toy_app, name="toy")


@toy_app.command("train")
def toy_train_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint folder.")] = Path("toy-train"),
    # The defaults are TrainConfig's, the shipped weights' settings (kept literal so that --help does not
    # import torch; a test keeps the two in step).
    steps: int = 8000,
    batch_size: int = 96,
    d_model: int = 128,
    layers: int = 4,
    seed: int = 0,
    checkpoint_every: int = 800,
    eval_items: Annotated[
        int, typer.Option(help="Held-out items per checkpoint evaluation (0: none).")
    ] = 400,
    init: Annotated[Path | None, typer.Option(help="Fine-tune from this checkpoint.")] = None,
) -> None:
    """Train the built-in model from scratch (reproducible: fixed seeds, fresh procedural data)."""
    import numpy as np

    from gapeval.files import output_folder
    from gapeval.toy.data import sample_specs
    from gapeval.toy.evaluate import evaluate_specs
    from gapeval.toy.train import TrainConfig, train

    def go() -> None:
        output_folder(out_dir)  # one line before the bar when the folder cannot be made
        cfg = TrainConfig(
            steps=steps,
            batch_size=batch_size,
            d_model=d_model,
            n_layers=layers,
            seed=seed,
            checkpoint_every=checkpoint_every,
        )
        held_out = (
            sample_specs(np.random.default_rng(seed + 7), eval_items, split="test") if eval_items else []
        )
        with Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as bar:
            task = bar.add_task("training", total=steps)

            def on_step(step: int, loss: float) -> None:
                bar.update(task, completed=step, description=f"training (loss {loss:.3f})")

            def evaluate(model, vocab, tok):  # type: ignore[no-untyped-def]
                res = evaluate_specs(model, vocab, tok, held_out)
                bar.console.print(f"held-out: und {res['und']:.3f}  gen {res['gen']:.3f}")
                return res

            final = train(out_dir, cfg, init=init, on_step=on_step, evaluate=evaluate if held_out else None)
        out.print(f"final checkpoint: {final}; log: {out_dir / 'train_log.jsonl'}")

    _guard(go)


@app.command("sample")
def sample_cmd(
    target: Annotated[Path, typer.Argument(help="Folder to write the sample tree into.")] = Path(
        "gapeval-sample"
    ),
) -> None:
    """Write a 12-item sample in the authors' layout, with replayable outputs and their verdicts."""
    from gapeval.suites.sample import SAMPLE_MODEL, write_sample_tree

    def go() -> None:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise GapevalError("exists and is not an empty folder; pick another folder", file=target)
        write_sample_tree(target)
        out.print(f"wrote {target}; try: gapeval run {target} -m replay:{SAMPLE_MODEL} -j rules -j recorded")

    _guard(go)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
