"""A Markdown report written into the run directory: leaderboard, joint tables, provenance."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from gapeval.records import RunManifest
from gapeval.report.render import to_markdown
from gapeval.report.tables import joint_table, leaderboard_table, mirt_table
from gapeval.scoring.gap_analysis import GapAnalysis
from gapeval.scoring.joint import RunScores
from gapeval.scoring.leaderboard import LeaderRow
from gapeval.scoring.result import ScoreResult


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
        *(["", *(f"- note: {n}" for n in notes)] if notes else []),
        "",
    ]
    tables = [leaderboard_table(rows, title="Leaderboard", platform=platform_note), joint_table(scores)]
    if analysis is not None:
        tables.append(mirt_table(analysis))
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n" + "\n".join(to_markdown(t) for t in tables), encoding="utf-8")
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
    """A short Markdown summary of scored runs (for a README or a pull request): the Overall rows."""
    tables = [leaderboard_table([r for r in result.leaderboard if r.category == "Overall"], title="Summary",
                                platform=result.platform)]  # fmt: skip
    if result.mirt is not None:
        tables.append(mirt_table(result.mirt, groups=["Overall"]))
    return "\n".join(to_markdown(t) for t in tables)


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
