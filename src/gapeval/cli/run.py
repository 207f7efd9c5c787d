"""``gapeval run`` and ``gapeval demo``: evaluate a model on a suite, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gapeval.cli.shell import (
    BootOpt,
    FragilityOpt,
    JsonOpt,
    RubricsOpt,
    app,
    direction_bars,
    guard,
    judge_stats_json,
    notifier,
    options,
    print_json,
    print_judge_stats,
    print_notes,
    say,
    show,
    tell,
)

if TYPE_CHECKING:
    from gapeval.api import EvaluateResult, RunResult


def _judge_options(
    given: list[str] | None, base_url: str | None, rubrics: Path | None = None
) -> dict[str, str]:
    """``--judge-opt`` plus ``--base-url`` and ``--rubrics``, its shorthands."""
    opts = options(given, "--judge-opt")
    if base_url is not None:
        opts["base_url"] = base_url
    if rubrics is not None:
        opts["rubrics"] = str(rubrics)
    return opts


def _executor_options(
    given: list[str] | None, address: str | None, replicas: int | None, gpus: float | None
) -> dict[str, str]:
    """``--executor-opt`` plus the Ray flags that are shorthands for its options."""
    opts = options(given, "--executor-opt")
    named = {"address": address, "replicas": replicas, "gpus_per_replica": gpus}
    opts.update({k: str(v) for k, v in named.items() if v is not None})
    return opts


def _summary(res: EvaluateResult) -> dict[str, Any]:
    run = res.run
    return {
        "run": str(run.path),
        "resumed": run.resumed,
        "model_loaded": run.model_loaded,
        "outputs": vars(run.stats),
        "judges": judge_stats_json(run.judge_stats),
        "judges_from": run.judges_from,
        "skipped": [s.line() for s in run.suite.skipped],
        "report": str(res.report) if res.report else None,
        "html_report": str(res.site.index) if res.site else None,
        **res.score.to_json(),
    }


def _print(res: EvaluateResult, title: str) -> None:
    from gapeval.report.tables import score_tables

    show(*score_tables(res.score, title=title))
    print_notes(res.score.notes)
    say(f"run directory: {res.run.path}")
    if res.report:
        say(f"report: {res.report}")
    if res.site:
        say(f"html report: {res.site.index}")


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
    rubrics: RubricsOpt = None,
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
    fragility_n: FragilityOpt = 6,
    n_boot: BootOpt = 200,
    html: Annotated[
        bool, typer.Option("--html/--no-html", help="Write the HTML report (RUN/report).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run a model on a suite, judge it, score it, print the tables, and write the HTML report."""
    from gapeval import api

    def ran(run: RunResult) -> None:
        for s in run.suite.skipped:
            tell(f"skipped: {s.line()}")
        if run.stats.failed:
            tell(f"{run.stats.failed} outputs failed; first reasons: {'; '.join(run.stats.reasons[:3])}")

    def go() -> None:
        with direction_bars() as bars:
            res = api.evaluate(
                suite,
                model,
                html=html,
                on_run=ran,
                fragility_n=fragility_n,
                n_boot=n_boot,
                out=out_dir,
                seed=seed,
                samples_und=samples_und,
                samples_gen=samples_gen,
                judges=judge or None,
                judge_options=_judge_options(judge_opt, base_url, rubrics),
                model_options=options(model_opt),
                batch_size=batch_size,
                executor=executor,
                executor_options=_executor_options(executor_opt, ray_address, replicas, gpus_per_replica),
                label=label,
                skip_invalid=skip_invalid,
                progress=bars.advance,
                on_total=bars.totals,
                notify=notifier(bars.bar, bars.tasks["gen"], "judging"),
            )
        run = res.run
        if as_json:
            print_json(_summary(res))
            return
        st = run.stats
        say(
            f"{'resumed' if run.resumed else 'new'} run: {st.done} outputs done, {st.failed} failed, "
            f"{st.unsupported} unsupported, {st.skipped_done} already done"
        )
        if run.judges_from == "suite":
            say(f"judges: {', '.join(run.judges)} (the suite's own; -j to choose)")
        print_judge_stats(run.judge_stats)
        _print(res, "GapEval leaderboard")

    guard(go)


@app.command("demo")
def demo_cmd(
    suite: Annotated[str, typer.Option(help="Built-in suite to run.")] = "shapes-v1",
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec.")] = "toy",
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (same spec resumes).")
    ] = None,
    fragility_n: FragilityOpt = 6,
    as_json: JsonOpt = False,
) -> None:
    """The main job, offline on a CPU: the built-in model on the built-in world, judged exactly."""
    from gapeval import api

    def go() -> None:
        with direction_bars() as bars:
            res = api.demo(
                suite,
                model,
                out=out_dir,
                fragility_n=fragility_n,
                progress=bars.advance,
                on_total=bars.totals,
            )
        if as_json:
            print_json(_summary(res))
            return
        _print(res, f"{model} on {suite}")

    guard(go)
