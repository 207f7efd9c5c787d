"""A Markdown report written into the run directory: leaderboard, joint tables, provenance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gapeval.records import RunManifest
from gapeval.scoring.gap_analysis import GapAnalysis
from gapeval.scoring.joint import RunScores
from gapeval.scoring.leaderboard import LeaderRow
from gapeval.scoring.result import ScoreResult


def _f(x: float | None, nd: int = 1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def write_report(
    run_dir: Path,
    manifest: RunManifest,
    scores: RunScores,
    rows: Sequence[LeaderRow],
    analysis: GapAnalysis | None = None,
    *,
    platform_note: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and ``report.json``; returns the Markdown path.

    ``platform_note`` says whether the paper-compatible Gap on this machine is bit-for-bit the authors'.
    """
    spec = manifest.spec
    lines = [
        f"# gapeval report: {manifest.display_name} on {spec.suite_name}",
        "",
        f"- suite: `{spec.suite_name}` v{spec.suite_version}, {spec.n_items} items, content hash "
        f"`{spec.suite_hash[:16]}`",
        f"- model: `{spec.model}`; samples per item: {spec.samples_und} answer(s), "
        f"{spec.samples_gen} image(s); run seed {spec.seed}",
        "- judges (by precedence): "
        + ", ".join(f"`{j}` ({scores.protocols.get(j) or 'exact'})" for j in scores.judges),
        f"- gapeval {manifest.versions.get('gapeval', '?')}, git {manifest.git_revision or 'n/a'}, "
        f"created {manifest.created_at}",
        "",
        "## Leaderboard (x100)",
        "",
        "| category | N | N und | N gen | unsupported | failed | Succ | Und | Gen | Gap | ±frag | Cons |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.category} | {r.n_paired} | {r.und_n} | {r.gen_n} | {r.unsupported} | {r.failed} | "
            f"{_f(r.succ)} | {_f(r.und)} | {_f(r.gen)} | {_f(r.gap)} | {_f(r.gap_fragility, 2)} | "
            f"{_f(r.consistency)} |"
        )
    lines += [
        "",
        "Succ: right both ways. Und/Gen: accuracy per direction. Gap: the paper-compatible Gap Score; "
        "±frag: its largest change under 1e-6 input noise (the score is numerically fragile). "
        "Cons: share of items whose two directions agree.",
        *(["", platform_note] if platform_note else []),
        *(["", *(f"- note: {n}" for n in notes)] if notes else []),
        "",
        "## Joint outcomes (expected counts over paired items)",
        "",
        "| category | both right | und only | gen only | both wrong | missing |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    groups = {**scores.categories, "Overall": scores.overall}
    for name, g in groups.items():
        j = g.joint
        lines.append(
            f"| {name} | {j.both:.1f} | {j.und_only:.1f} | {j.gen_only:.1f} | {j.neither:.1f} | {g.missing} |"
        )
    if analysis is not None:
        lines += [
            "",
            "## Identified gap (paired-question MIRT, logits)",
            "",
            "| group | θ und | θ gen | gap | 95% CI (±1.96 SE) | bootstrap CI | n10/n01 | p (Holm) |",
            "|---|--:|--:|--:|--:|--:|--:|--:|",
        ]
        for e in analysis.estimates:
            ci = "–" if e.ci_low is None else f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}]"
            wald = "–" if e.wald_low is None else f"[{e.wald_low:+.2f}, {e.wald_high:+.2f}]"
            star = "*" if e.at_boundary else ""
            lines.append(
                f"| {e.group} | {e.theta_und:+.2f} | {e.theta_gen:+.2f} | {e.gap:+.3f}{star} | {wald} | "
                f"{ci} | {e.n10}/{e.n01} | {e.p_adjusted:.3g} |"
            )
        lines += [
            "",
            "Gap > 0: understanding ahead. With one model the question effect is shared by both "
            "directions and the gap equals log(n10/n01). p: McNemar's exact test of no gap, Holm-adjusted. "
            "*: a direction answered all right (or all wrong): no finite estimate; a weak prior bounds it.",
        ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (run_dir / "report.json").write_text(
        json.dumps(
            {
                "scores": scores.model_dump(),
                "leaderboard": [r.model_dump() for r in rows],
                "mirt": analysis.model_dump() if analysis else None,
                "platform": platform_note,
                "notes": list(notes),
            },
            indent=2,
        )
    )
    return path


def summary_markdown(result: ScoreResult) -> str:
    """A short Markdown summary of scored runs (for a README or a pull request): overall rows and gaps."""
    lines = [
        "| model | N | Succ | Und | Gen | both | und only | gen only | neither | Gap | ±frag |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in result.leaderboard:
        if r.category == "Overall":
            shares = " | ".join(f"{100 * p:.1f}" for p in r.joint)
            lines.append(
                f"| {r.model} | {r.n_paired} | {_f(r.succ)} | {_f(r.und)} | {_f(r.gen)} | {shares} | "
                f"{_f(r.gap)} | {_f(r.gap_fragility, 2)} |"
            )
    if result.mirt is not None:
        lines += ["", "| model | identified gap (logits) | interval | p (no gap) |", "|---|--:|--:|--:|"]
        for e in result.mirt.estimates:
            if e.group == "Overall":
                ci = "–" if e.ci_low is None else f"[{e.ci_low:+.2f}, {e.ci_high:+.2f}]"
                lines.append(f"| {e.model} | {e.gap:+.3f} | {ci} | {e.p_nogap:.3g} |")
    lines += ["", "Percentages x100 of items decided both ways; Gap: the paper-compatible Gap Score."]
    if result.platform:
        lines += ["", result.platform]
    return "\n".join(lines) + "\n"


class MarkdownReport:
    """The ``markdown`` report: ``report.md`` and ``report.json`` in the run directory."""

    @staticmethod
    def write(run_dir: Path, manifest: RunManifest, result: ScoreResult) -> Path:
        """Render a scored run; returns the Markdown path."""
        if not result.runs:
            raise ValueError("a report needs the run's scores")
        return write_report(
            run_dir,
            manifest,
            result.runs[0],
            [r for r in result.leaderboard if r.run == result.runs[0].run],
            result.mirt,
            platform_note=result.platform,
            notes=result.notes,
        )
