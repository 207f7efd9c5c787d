"""The HTML report: a static, self-contained site for one or several runs.

``index.html`` opens straight from disk: every script and style is shipped in the package and copied
beside it, charts are SVG files whose text is drawn as paths, and no URL leaves the folder. Beside the
page: ``tables/*.csv``, ``figures/*.svg|png`` and ``summary.md``.

Safety: the leaderboard and the provenance page are rendered by jinja2 with autoescaping; everything in
the item browser (prompts, answers, judge reasons and raw replies, which come from datasets, models and
judges) travels as JSON in ``data.js`` and is put into the page with ``textContent`` only, never as
markup.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from PIL import Image

from gapeval.errors import GapevalError
from gapeval.files import output_folder
from gapeval.images import open_rgb
from gapeval.items import Direction, Item
from gapeval.records import OutputStatus, RunRecords, VerdictStatus
from gapeval.report import figures
from gapeval.report.render import HTML_HELPERS, to_csv
from gapeval.report.tables import score_tables
from gapeval.scoring.joint import VerdictIndex, item_scores
from gapeval.scoring.result import ScoreResult
from gapeval.store import image_file, is_sha256

#: Largest side of a full-size image in the report, and of a thumbnail (pixels).
FULL_SIDE, THUMB_SIDE = 640, 160

OUTCOMES = {
    "both": "right both ways",
    "und_only": "understood but failed to draw",
    "gen_only": "drew but failed to answer",
    "neither": "wrong both ways",
    "missing": "not decided both ways",
}


@dataclass
class SitePaths:
    """What :func:`write_site` wrote (and, for ``gapeval report -k``, the per-run reports beside it)."""

    index: Path
    provenance: Path
    summary: Path
    tables: list[Path]
    figures: list[Path]
    reports: list[Path] = field(default_factory=list)


class _Images:
    """Copies each image once (by content), as a capped full-size file and a thumbnail."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "full").mkdir(parents=True, exist_ok=True)
        (folder / "thumb").mkdir(parents=True, exist_ok=True)
        self.done: dict[str, tuple[str, str] | None] = {}

    def add(self, key: str, path: Path) -> tuple[str, str] | None:
        """``(full, thumb)`` paths relative to the site, or None when the file is unreadable."""
        if key in self.done:
            return self.done[key]
        if not is_sha256(key):  # the key names files in the site: it must never be a path
            raise GapevalError(f"not a SHA-256: {key[:80]!r}", file=path, field="sha256")
        try:
            rgb = open_rgb(path)  # over the pixel cap: refused before decoding
        except GapevalError:
            self.done[key] = None
            return None
        out = (self._write(rgb, "full", key, FULL_SIDE), self._write(rgb, "thumb", key, THUMB_SIDE))
        self.done[key] = out
        return out

    def _write(self, img: Image.Image, kind: str, key: str, side: int) -> str:
        small = img.copy()
        if max(small.size) > side:
            small.thumbnail((side, side), Image.Resampling.LANCZOS)
        # Small pictures (drawings, the shapes world) stay lossless PNG; large ones become WebP, which
        # keeps a report of 646 items x 5 models with 512 px images under 100 MB.
        lossless = max(small.size) <= 256
        name = f"{kind}/{key[:32]}.{'png' if lossless else 'webp'}"
        if lossless:
            small.save(self.folder / name, format="PNG", optimize=True)
        else:
            small.save(self.folder / name, format="WEBP", quality=80, method=4)
        return f"img/{name}"


def _item_record(item: Item | None, item_id: str, cat: tuple[Any, str], images: _Images) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item_id, "category": cat[0].value, "subcategory": cat[1]}
    if item is None:
        return rec
    rec.update(
        und_prompt=item.und.prompt,
        gen_prompt=item.gen.prompt,
        images=[images.add(r.sha256, Path(r.path)) for r in item.und.images],
        input_image=images.add(item.gen.input_image.sha256, Path(item.gen.input_image.path))
        if item.gen.input_image
        else None,
        ref_text=item.refs.text or (f"option {item.refs.choice}" if item.refs.choice else None),
        ref_image=images.add(item.refs.image.sha256, Path(item.refs.image.path)) if item.refs.image else None,
    )
    return rec


def _outcome(u: float | None, g: float | None) -> str:
    if u is None or g is None:
        return "missing"
    right_u, right_g = u >= 0.5, g >= 0.5
    return {(True, True): "both", (True, False): "und_only", (False, True): "gen_only"}.get(
        (right_u, right_g), "neither"
    )


def _agreement(decided: list[bool | None]) -> str:
    votes = {d for d in decided if d is not None}
    if len([d for d in decided if d is not None]) < 2:
        return "single"
    return "agree" if len(votes) == 1 else "disagree"


def browser_data(
    runs: Sequence[RunRecords], names: Sequence[str], orders: Sequence[Sequence[str]],
    items: dict[str, Item], images: _Images, only: set[tuple[str, str, int]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The item browser's data: every item, and per model its outputs, verdicts and joint outcome.

    With ``only``, just those outputs (``(item_id, direction, sample)``) and their items, and the page
    opens in labelling mode.
    """
    all_items: dict[str, dict[str, Any]] = {}
    wanted = {k[0] for k in only} if only is not None else None
    for rec in runs:
        for item_id, cat in rec.items.items():
            if wanted is not None and item_id not in wanted:
                continue
            if item_id not in all_items:
                all_items[item_id] = _item_record(items.get(item_id), item_id, cat, images)
    per_model: list[dict[str, Any]] = []
    for rec, name, order in zip(runs, names, orders, strict=True):
        scores = item_scores(rec, order)
        index = VerdictIndex(rec)
        by_output: dict[str, list[dict[str, Any]]] = {}
        for v in rec.verdicts:
            by_output.setdefault(v.output_key, []).append(
                {
                    "judge": v.judge_id,
                    "status": str(v.status),
                    "passed": v.passed,
                    "score": v.score,
                    "reason": v.reason,
                    "raw": v.raw[:4000],
                }
            )
        entries: dict[str, dict[str, Any]] = {}
        for out in rec.outputs:
            if only is not None and (out.item_id, str(out.direction), out.sample) not in only:
                continue
            e = entries.setdefault(out.item_id, {"und": [], "gen": [], "agreement": "single"})
            chosen = index.choose(out, order)
            verdicts = by_output.get(out.output_key or "", [])
            decided = [v["passed"] for v in verdicts if v["status"] == str(VerdictStatus.OK)]
            shown: dict[str, Any] = {
                "sample": out.sample,
                "status": str(out.status),
                "error": out.error,
                "verdicts": verdicts,
                "decided_by": chosen.judge_id if chosen else None,
            }
            if out.direction is Direction.UND:
                shown["text"] = out.text
            elif out.image_sha:
                shown["image"] = images.add(out.image_sha, image_file(rec.path, out.image_sha))
            e[str(out.direction)].append(shown)
            agreement = _agreement(decided)
            if agreement == "disagree" or (agreement == "agree" and e["agreement"] == "single"):
                e["agreement"] = agreement
        for item_id, e in entries.items():
            e["outcome"] = _outcome(
                scores.get((item_id, Direction.UND)), scores.get((item_id, Direction.GEN))
            )
        per_model.append({"name": name, "items": entries})
    # Labels in progress are kept in the browser under this key: the same report reopened (or rewritten
    # with the same runs and items) finds them; another report does not.
    key = hashlib.sha256(json.dumps([list(names), sorted(all_items)]).encode()).hexdigest()[:16]
    return {"items": list(all_items.values()), "models": per_model, "outcomes": OUTCOMES,
            "labels": {"key": key, "start": only is not None}}  # fmt: skip


def _heatmap_rows(result: ScoreResult) -> tuple[dict[str, dict[str, float | None]], str]:
    if result.mirt is not None and any(e.group != "Overall" for e in result.mirt.estimates):
        rows: dict[str, dict[str, float | None]] = {}
        for e in result.mirt.estimates:
            if e.group != "Overall":
                rows.setdefault(e.model, {})[e.group] = e.gap
        return rows, "MIRT, logits"
    ref: dict[str, dict[str, float | None]] = {}
    for r in result.leaderboard:
        if r.category != "Overall":
            ref.setdefault(r.model, {})[r.category] = r.gap
    return (
        {m: v for m, v in ref.items() if any(x is not None for x in v.values())},
        "paper-compatible, x100",
    )


def template_env() -> jinja2.Environment:
    """The report templates' environment (autoescaped: anything from a model, judge or dataset is text)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("gapeval.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def write_site(
    runs: Sequence[RunRecords],
    result: ScoreResult,
    out: Path,
    *,
    items: dict[str, Item] | None = None,
    orders: Sequence[Sequence[str]] | None = None,
    summary_md: str = "",
    extra_charts: Sequence[Path] = (),
    only: set[tuple[str, str, int]] | None = None,
) -> SitePaths:
    """Write the report of ``runs`` (scored as ``result``) into the folder ``out``.

    Args:
        runs: The runs' records.
        result: Their scores (the leaderboard, joint tables and, if fitted, the MIRT gap).
        out: The folder to write (created; files of an earlier report there are replaced).
        items: The suite's items by id (prompts, images, references); without them the browser shows
            what the runs hold.
        orders: Per run, the judge ids by precedence (default: each run's last judging chain).
        summary_md: The Markdown summary to write as ``summary.md``.
        extra_charts: SVG charts drawn elsewhere (a checkpoint study's curves), shown first; a PNG of
            the same name beside one is copied too.
        only: A labelling sample: the browser holds just these outputs and opens in labelling mode.

    """
    output_folder(out)
    for sub in ("assets", "figures", "tables"):
        (out / sub).mkdir(exist_ok=True)
    names = (
        [r.model for r in result.runs]
        if len(result.runs) == len(runs)
        else [r.manifest.display_name for r in runs]
    )
    order_list = (
        [list(o) for o in orders] if orders is not None else [list(r.manifest.judge_chain) for r in runs]
    )
    images = _Images(out / "img")
    data = browser_data(runs, names, order_list, items or {}, images, only)
    # A script file, not inline JSON: a page opened from disk cannot fetch() a sibling file.
    (out / "data.js").write_text("window.GAPEVAL_DATA = " + json.dumps(data, ensure_ascii=True) + ";\n")
    static = resources.files("gapeval.report") / "static"
    for name in ("app.js", "style.css"):
        (out / "assets" / name).write_text((static / name).read_text(encoding="utf-8"), encoding="utf-8")

    figs = out / "figures"
    drawn: list[str | None] = [
        figures.accuracy_by_category(result.runs, figs),
        figures.joint_outcomes(result.runs, figs),
    ]
    if result.mirt is not None:
        drawn.append(figures.abilities(result.mirt, figs))
    heat_rows, heat_what = _heatmap_rows(result)
    drawn.append(figures.gap_heatmap(heat_rows, figs, heat_what))
    copied = []
    for chart in extra_charts:
        for twin in (chart, chart.with_suffix(".png")):
            if twin.is_file():
                shutil.copyfile(twin, figs / twin.name)
        copied.append(chart.name)
    charts = copied + [d for d in drawn if d]

    shown = score_tables(result)
    tables = []
    for table in shown:
        tables.append(out / "tables" / f"{table.name}.csv")
        tables[-1].write_text(to_csv(table), encoding="utf-8")
    summary = out / "summary.md"
    summary.write_text(summary_md)

    env = template_env()
    context = {
        "title": " vs ".join(names[:4]) + (" and more" if len(names) > 4 else ""),
        "suites": sorted({r.manifest.spec.suite_name for r in runs}),
        "tables": shown,
        "notes": result.notes,
        **HTML_HELPERS,
        "charts": charts,
        "outcomes": OUTCOMES,
    }
    index = out / "index.html"
    index.write_text(env.get_template("index.html.j2").render(**context), encoding="utf-8")
    provenance = out / "provenance.html"
    manifests = [
        {
            "name": name,
            "manifest": r.manifest,
            "json": json.dumps(r.manifest.model_dump(mode="json"), indent=2, sort_keys=True),
            "judges": r.manifest.judges,
            "order": order,
            "outputs": {s.value: sum(1 for o in r.outputs if o.status is s) for s in OutputStatus},
        }
        for r, name, order in zip(runs, names, order_list, strict=True)
    ]
    provenance.write_text(
        env.get_template("provenance.html.j2").render(
            title=context["title"], runs=manifests, platform=result.platform
        ),
        encoding="utf-8",
    )
    return SitePaths(index, provenance, summary, tables, [figs / c for c in charts])
