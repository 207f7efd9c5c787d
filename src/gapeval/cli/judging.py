"""``gapeval judge`` and ``gapeval agreement``: decide a run's outputs, and how far a judge agrees."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gapeval.cli.shell import (
    JsonOpt,
    RubricsOpt,
    app,
    guard,
    judge_stats_json,
    notifier,
    options,
    print_json,
    print_judge_stats,
    progress_bar,
    say,
    show,
    tell,
)
from gapeval.errors import GapevalError


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
    rubrics: RubricsOpt = None,
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
            "rubrics": rubrics,
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
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge id to compare (repeat for more).")
    ] = None,
    versus: Annotated[str | None, typer.Option("--vs", help="One more judge id.")] = None,
    samples: Annotated[
        bool,
        typer.Option(
            "--samples",
            help="Compare each judge's independent samples (judged with --samples k): self-agreement.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Agreement among judges and people's labels: per pair and direction, kappa, Pearson r, and alpha."""
    from gapeval import api
    from gapeval.report.tables import agreement_table, reliability_table

    def go() -> None:
        res = api.agreement(run_dir, judges=judge or ["rules"], labels=labels, versus=versus, samples=samples)
        rel = res.reliability
        if as_json:
            detail = res.agreement.model_dump() if res.agreement is not None else {}
            print_json({**detail, "raters": rel.raters, "pairs": [p.model_dump() for p in rel.pairs],
                        "alpha": rel.alpha, "units": rel.units})  # fmt: skip
            return
        show(reliability_table(rel))
        if res.agreement is not None:
            show(agreement_table(res.judge, res.other, res.agreement))

    guard(go)


@app.command("audit")
def audit_cmd(
    run_dir: Annotated[
        Path,
        typer.Argument(
            help="Run directory (or bundle) the judge has judged; or a built-in world (shapes-v2): run the "
            "built-in model there, judge it exactly and with the judge, and audit it against scene."
        ),
    ],
    judge: Annotated[
        str | None, typer.Option("--judge", "-j", help="Judge id to audit (e.g. openai:gpt-5-mini).")
    ] = None,
    truth: Annotated[
        str | None,
        typer.Option(
            help="The truth: an exact judge that judged the run (scene), or a labels CSV "
            "(item_id, direction, sample, label)."
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            help="Instead: draw N outputs for people to label (stratified by direction x category) into "
            "a report in labelling mode, and say how many labels each stratum needs."
        ),
    ] = None,
    width: Annotated[float, typer.Option(help="With --sample: the planned interval's width.")] = 0.2,
    base_url: Annotated[
        str | None, typer.Option(help="On a built-in world: the VLM judge's endpoint.")
    ] = None,
    judge_opt: Annotated[
        list[str] | None,
        typer.Option("--judge-opt", help="On a built-in world: judge option KEY=VALUE (protocol=paper...)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="With --sample: the draw's seed.")] = 0,
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Audit file (default RUN/audits/JUDGE-vs-TRUTH.json); with --sample, the "
            "report folder (default RUN/audits/labelling); on a built-in world, the run directory "
            "(default runs/audit-WORLD).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """How far a judge can be trusted in each direction: sensitivity, specificity, kappa, and their bias.

    With --sample N, first draw the outputs people should label: open the report it writes, label
    (p pass, f fail, s skip, n next, b back), export the labels, then audit with --truth LABELS.csv.
    """
    if sample is not None:
        _label_sample(run_dir, sample, judge=judge, width=width, seed=seed, out=out_file, as_json=as_json)
        return
    if not run_dir.exists() and str(run_dir).startswith("shapes-"):
        opts = guard(lambda: options(judge_opt, "--judge-opt"))
        if base_url is not None:
            opts["base_url"] = base_url
        _audit_world(str(run_dir), judge, truth, opts, out=out_file, as_json=as_json)
        return
    from gapeval import api
    from gapeval.report.tables import audit_table

    def go() -> None:
        if judge is None or truth is None:
            raise GapevalError("name the judge (-j) and the truth (--truth), or draw a labelling --sample",
                               field="--truth")  # fmt: skip
        res = api.audit(run_dir, judge=str(judge), truth=str(truth), out=out_file)
        if as_json:
            print_json({"audit": res.audit.model_dump(), "file": str(res.path), "unmatched": res.unmatched})
            return
        show(audit_table(res.audit))
        if res.unmatched:
            tell(f"note: {res.unmatched} labels name no output of this run and were left out")
        say(f"wrote {res.path}; correct the scores with: gapeval score RUN --judge-audit {res.path}")

    guard(go)


def _audit_world(
    suite: str,
    judge: str | None,
    truth: str | None,
    opts: dict[str, str],
    *,
    out: Path | None,
    as_json: bool,
) -> None:
    """``gapeval audit shapes-v2 -j JUDGE``: the built-in world's run, judged both ways, and the audit."""
    from gapeval import api
    from gapeval.report.tables import audit_table

    def go() -> None:
        if judge is None:
            raise GapevalError("name the judge to audit (-j openai:gpt-5-mini)", field="--judge")
        if truth not in (None, "scene"):
            raise GapevalError("on a built-in world the truth is its exact judge, scene", field="--truth")
        with progress_bar() as bar:
            task = bar.add_task("running and judging", total=None)
            res = api.audit_world(judge, suite, out=out, judge_options=opts,
                                  progress=lambda _, n: bar.advance(task, n),
                                  notify=notifier(bar, task, "judging"))  # fmt: skip
        if as_json:
            print_json({"audit": res.audit.model_dump(), "file": str(res.path)})
            return
        show(audit_table(res.audit))
        say(f"wrote {res.path}; correct any run this judge scores with: "
            f"gapeval score RUN --judge-audit {res.path}")  # fmt: skip

    guard(go)


def _label_sample(
    run_dir: Path, n: int, *, judge: str | None, width: float, seed: int, out: Path | None, as_json: bool
) -> None:
    """``gapeval audit RUN --sample N``: a labelling sample and its report."""
    from gapeval import api
    from gapeval.report.tables import label_plan_table

    def go() -> None:
        res = api.label_sample(run_dir, n, judge=judge, width=width, seed=seed, out=out)
        if as_json:
            print_json({"plan": res.plan.model_dump(), "report": str(res.index),
                        "sample": str(res.sample_csv)})  # fmt: skip
            return
        show(label_plan_table(res.plan))
        say(f"open {res.index} and label (p pass, f fail, s skip, n next, b back); export the labels, then: "
            f"gapeval audit {run_dir} -j {judge or 'JUDGE'} --truth labels.csv")  # fmt: skip

    guard(go)
