"""The ``gapeval`` command: a thin shell that parses, calls the library, and prints."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from gapeval.errors import GapevalError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure the understanding/generation gap of unified multimodal models.",
)
out = Console()
err = Console(stderr=True)
T = TypeVar("T")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; a user error becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except GapevalError as exc:
        err.print(f"[red]error:[/red] {exc.line()}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _options(pairs: list[str] | None) -> dict[str, str]:
    opts = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise GapevalError(f"model option {pair!r} is not KEY=VALUE", field="--model-opt")
        opts[key] = value
    return opts


def _fmt(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def print_leaderboard(rows: list[Any], title: str = "GapEval leaderboard (x100)") -> None:
    """Rich table of leaderboard rows."""
    table = Table(title=title, title_justify="left")
    for col, just in [
        ("model", "left"),
        ("category", "left"),
        ("N", "right"),
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
            r.model,
            r.category,
            str(r.n_paired),
            _fmt(r.succ),
            _fmt(r.und),
            _fmt(r.gen),
            _fmt(r.gap),
            _fmt(r.gap_fragility, 2),
            _fmt(r.consistency),
        )
    out.print(table)
    out.print(
        "Succ: both directions right · Und/Gen: accuracy per direction · Gap: paper-compatible Gap "
        "Score · ±frag: its largest change under 1e-6 input noise · Cons: directions agree",
        style="dim",
    )


@app.command("run")
def run_cmd(
    suite: Annotated[str, typer.Argument(help="Suite name or path (authors' layout folder, or .jsonl).")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model spec, e.g. replay:janus-pro.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run directory (same spec resumes).")
    ] = None,
    judge: Annotated[list[str] | None, typer.Option("--judge", "-j", help="Judge chain, in order.")] = None,
    seed: int = 0,
    samples_und: int = 1,
    samples_gen: int = 1,
    batch_size: int = 8,
    model_opt: Annotated[
        list[str] | None, typer.Option("--model-opt", help="Adapter option KEY=VALUE.")
    ] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Load the good items, list the bad ones.")] = False,
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    as_json: JsonOpt = False,
) -> None:
    """Run a model on a suite, judge it, and print the leaderboard row."""
    from gapeval import api
    from gapeval.scoring import leaderboard, score_run
    from gapeval.store import RunStore

    def go() -> None:
        with _progress() as bar:
            task = bar.add_task("outputs", total=None)
            res = api.run(
                suite,
                model,
                out=out_dir,
                seed=seed,
                samples_und=samples_und,
                samples_gen=samples_gen,
                judges=judge or ["rules"],
                model_options=_options(model_opt),
                batch_size=batch_size,
                skip_invalid=skip_invalid,
                progress=lambda n: bar.advance(task, n),
                on_total=lambda n: bar.update(task, total=n),
            )
        for s in res.suite.skipped:
            err.print(f"skipped: {s.line()}", highlight=False, soft_wrap=True)
        with RunStore.open(res.path) as store:
            scores = score_run(store)
        rows = leaderboard([scores], gap=_has_torch(), fragility_n=fragility_n)
        summary = {
            "run": str(res.path),
            "resumed": res.resumed,
            "outputs": vars(res.stats),
            "judges": {k: vars(v) for k, v in res.judge_stats.items()},
            "skipped": [s.line() for s in res.suite.skipped],
            "leaderboard": [r.model_dump() for r in rows],
        }
        if as_json:
            out.print_json(data=summary)
            return
        st = res.stats
        out.print(
            f"{'resumed' if res.resumed else 'new'} run: {st.done} outputs done, {st.failed} failed, "
            f"{st.unsupported} unsupported, {st.skipped_done} already done"
        )
        for jid, js in res.judge_stats.items():
            out.print(
                f"judge {jid}: {js.judged} decided, {js.cached} cached, {js.abstained} abstained, "
                f"{js.failed} failed"
            )
        print_leaderboard(rows)
        out.print(f"run directory: {res.path}")

    _guard(go)


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        err.print("note: the Gap column needs torch (pip install 'gapeval[torch]')")
        return False
    return True


@app.command("judge")
def judge_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    judge: Annotated[list[str], typer.Option("--judge", "-j", help="Judge chain, in order.")],
    suite: Annotated[str | None, typer.Option(help="Suite location, if it moved since the run.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Judge a run's stored outputs (never re-runs the model; cached verdicts are reused)."""
    from gapeval import api

    def go() -> None:
        stats = api.judge(run_dir, judge, suite_source=suite)
        data = {k: vars(v) for k, v in stats.items()}
        if as_json:
            out.print_json(data=data)
            return
        for jid, js in stats.items():
            out.print(
                f"judge {jid}: {js.judged} decided, {js.cached} cached, {js.abstained} abstained, "
                f"{js.failed} failed"
            )

    _guard(go)


@app.command("score")
def score_cmd(
    runs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
    judge: Annotated[
        list[str] | None, typer.Option("--judge", "-j", help="Judge ids, by precedence.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv.")] = "table",
    method: Annotated[str, typer.Option(help="Gap method: reference (the paper's scorer).")] = "reference",
    coupling: Annotated[
        str, typer.Option(help="categories (released scorer) or models (appendix).")
    ] = "categories",
    fragility_n: Annotated[int, typer.Option("--fragility", help="Perturbed refits for ±frag (0: off).")] = 6,
    as_json: JsonOpt = False,
) -> None:
    """Score runs from their stored verdicts: accuracies, joint tables, Gap Scores."""
    from gapeval.scoring import leaderboard, score_run
    from gapeval.store import RunStore

    def go() -> None:
        if method != "reference":
            raise GapevalError(f"unknown method {method!r}; available: reference", field="--method")
        if coupling not in ("categories", "models"):
            raise GapevalError(f"unknown coupling {coupling!r}", field="--coupling")
        if fmt not in ("table", "json", "csv"):
            raise GapevalError(f"unknown format {fmt!r}", field="--format")
        scored = []
        for run_dir in runs:
            with RunStore.open(run_dir) as store:
                scored.append(score_run(store, judge))
        rows = leaderboard(
            scored,
            gap=_has_torch(),
            coupling=coupling,  # type: ignore[arg-type]
            fragility_n=fragility_n,
        )
        if as_json or fmt == "json":
            out.print_json(
                data={"runs": [s.model_dump() for s in scored], "leaderboard": [r.model_dump() for r in rows]}
            )
        elif fmt == "csv":
            buf = io.StringIO()
            fields = [f for f in rows[0].model_dump() if f != "joint"] + ["p11", "p10", "p01", "p00"]
            writer = csv.DictWriter(buf, fieldnames=fields)
            writer.writeheader()
            for r in rows:
                d = r.model_dump()
                joint = d.pop("joint")
                writer.writerow({**d, **dict(zip(["p11", "p10", "p01", "p00"], joint, strict=True))})
            sys.stdout.write(buf.getvalue())
        else:
            title = "GapEval leaderboard (x100)" + (
                " — models-coupled Gap (appendix reading)" if coupling == "models" else ""
            )
            print_leaderboard(rows, title)

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
        out.print(f"wrote {path}")

    _guard(go)


@app.command("suites")
def suites_cmd(as_json: JsonOpt = False) -> None:
    """List the suites gapeval knows by name."""
    from gapeval.suites import SUITES

    if as_json:
        out.print_json(data=SUITES)
        return
    for name, desc in SUITES.items():
        out.print(f"[bold]{name}[/bold]  {desc}")
    out.print("Any folder in the authors' layout, or a .jsonl suite file, works as a suite too.", style="dim")


@app.command("models")
def models_cmd(as_json: JsonOpt = False) -> None:
    """List the model families (adapters load lazily; optional dependencies stay optional)."""
    from gapeval.judges.base import JUDGE_DESCRIPTIONS
    from gapeval.models.base import available_models

    if as_json:
        out.print_json(data={"models": available_models(), "judges": JUDGE_DESCRIPTIONS})
        return
    for name, desc in available_models().items():
        out.print(f"[bold]{name}[/bold]  {desc}")
    out.print("judges:", style="dim")
    for name, desc in JUDGE_DESCRIPTIONS.items():
        out.print(f"[bold]{name}[/bold]  {desc}")


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
            err.print(f"skipped: {k.line()}", highlight=False, soft_wrap=True)

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


@app.command("sample")
def sample_cmd(
    target: Annotated[Path, typer.Argument(help="Folder to write the sample tree into.")] = Path(
        "gapeval-sample"
    ),
) -> None:
    """Write a 12-item sample in the authors' layout, with replayable outputs and their verdicts."""
    from gapeval.suites.sample import SAMPLE_MODEL, write_sample_tree

    def go() -> None:
        if target.exists() and any(target.iterdir()):
            raise GapevalError("exists and is not empty; pick another folder", file=target)
        write_sample_tree(target)
        out.print(f"wrote {target}; try: gapeval run {target} -m replay:{SAMPLE_MODEL} -j rules -j recorded")

    _guard(go)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
