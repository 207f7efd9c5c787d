"""``gapeval judge`` and ``gapeval agreement``: decide a run's outputs, and how far a judge agrees."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import (
    JsonOpt,
    app,
    guard,
    judge_stats_json,
    notifier,
    options,
    print_json,
    print_judge_stats,
    progress_bar,
    show,
)


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
        opts = options(judge_opt, "--judge-opt")
        named = {
            "base_url": base_url,
            "api_key_env": api_key_env,
            "concurrency": concurrency,
            "samples": samples,
        }
        opts.update({k: str(v) for k, v in named.items() if v is not None})
        if two_turn:
            opts["two_turn"] = "all"
        if protocol is not None:
            opts["protocol"] = protocol
        with progress_bar() as bar:
            task = bar.add_task("judging", total=None)
            stats = api.judge(
                run_dir,
                judge,
                suite_source=suite,
                options=opts,
                progress=lambda n: bar.advance(task, n),
                notify=notifier(bar, task, "judging"),
            )
        if as_json:
            print_json(judge_stats_json(stats))
            return
        print_judge_stats(stats)

    guard(go)


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
    from gapeval import api
    from gapeval.report.tables import agreement_table

    def go() -> None:
        res = api.agreement(run_dir, judge=judge, labels=labels, versus=versus)
        if as_json:
            print_json(res.agreement.model_dump())
            return
        show(agreement_table(res.judge, res.other, res.agreement))

    guard(go)
