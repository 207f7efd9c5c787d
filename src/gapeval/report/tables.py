"""One table model per result: columns, rows, a caption and caveats, built once and drawn by every renderer.

Every table a user sees (the terminal, ``report.md``, ``summary.md``, the HTML report, ``score -f csv`` and
the CSV files beside a report or an experiment) is a :class:`Table` built once from a typed result (here
for scores, by the result's own ``table()`` for the experiments above the reports) and drawn by
:mod:`gapeval.report.render`. So the columns, their names, the number formatting and the caveat
marks cannot drift apart between renderers.

A caveat is a reason a number must not be read at face value (a gap set by the fit's bounds, a score
whose noise exceeds its size). It travels with the row (its code, in CSV the ``caveats`` column), marks
the cells it concerns (``*``, ``†``) and adds its note under the table wherever a mark is shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from gapeval.judges.agreement import Agreement, Reliability
    from gapeval.scoring.correlate import Correlation
    from gapeval.scoring.gap_analysis import GapAnalysis
    from gapeval.scoring.joint import RunScores
    from gapeval.scoring.judge_error import Audit, Corrected, LabelPlan
    from gapeval.scoring.leaderboard import LeaderRow
    from gapeval.scoring.reference_gap import Fragility, ReferenceGap
    from gapeval.scoring.result import ScoreResult

Kind = Literal["text", "int", "number", "p", "interval"]

#: The one dash every renderer shows for a value that does not exist.
MISSING = "–"


class Column(BaseModel):
    """One column.

    Attributes:
        key: Its name in CSV and JSON (an interval becomes ``KEY_low`` and ``KEY_high``).
        title: Its heading where people read it.
        kind: ``text``, ``int``, ``number`` (``digits`` decimals), ``p`` (3 significant digits) or
            ``interval`` (a ``(low, high)`` pair).
        digits: Decimals of a number or interval.
        signed: Show a sign on every number (gaps, changes).
        scale: Multiply by this when shown (100 for shares shown as percentages); CSV keeps the value.
        help: What the column means (the HTML heading's tooltip).
        terminal: Shown in the terminal (wide tables leave some to the report and the CSV).
        shown: Shown to people at all (False: a detail kept for machines, in CSV only).

    """

    key: str
    title: str
    kind: Kind = "number"
    digits: int = 1
    signed: bool = False
    scale: float = 1.0
    help: str = ""
    terminal: bool = True
    shown: bool = True

    @property
    def text(self) -> bool:
        """Whether the column holds words (left-aligned, sorted as text)."""
        return self.kind == "text"


class Caveat(BaseModel):
    """A reason a number must not be read at face value.

    Attributes:
        code: Its name in data (``boundary``, ``fragile``).
        mark: The mark on the cells it concerns.
        note: What the mark means, shown under the table.

    """

    code: str
    mark: str
    note: str


class Row(BaseModel):
    """One row.

    Attributes:
        values: Per column key, the value (None: does not exist; a pair for an interval).
        caveats: The codes of the caveats on this row.
        section: The row starts a new group (a new model, a new probe).

    """

    values: dict[str, Any]
    caveats: list[str] = Field(default_factory=list)
    section: bool = False


class Table(BaseModel):
    """A result as columns and rows, with what a reader needs to read it.

    Attributes:
        name: Its file name stem (``leaderboard`` -> ``tables/leaderboard.csv``).
        title: Its heading.
        columns: The columns, in order.
        rows: The rows, in order.
        caption: What the columns mean.
        caveats: The caveats this table can carry, by code (only those a row carries are shown).
        marked: Per caveat code, the column keys its mark goes on.
        notes: Further lines a reader must see (the fit's health, the platform, the judges).

    """

    name: str
    title: str
    columns: list[Column]
    rows: list[Row]
    caption: str = ""
    caveats: dict[str, Caveat] = Field(default_factory=dict)
    marked: dict[str, list[str]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def shown(self, *, terminal: bool = False) -> list[Column]:
        """The columns people see (in the terminal: the ones that fit there)."""
        return [c for c in self.columns if c.shown and (c.terminal or not terminal)]

    def marks(self, row: Row, column: Column) -> str:
        """The caveat marks on one cell."""
        return "".join(
            self.caveats[code].mark for code in row.caveats if column.key in self.marked.get(code, ())
        )

    def cell(self, row: Row, column: Column) -> str:
        """One cell as people read it: the formatted value and its marks."""
        value = row.values.get(column.key)
        text = number(value, column)
        return text + self.marks(row, column) if text != MISSING else text

    def used_caveats(self) -> list[Caveat]:
        """The caveats some row carries, in the table's order."""
        codes = {code for row in self.rows for code in row.caveats}
        return [c for code, c in self.caveats.items() if code in codes]

    def legend(self) -> list[str]:
        """Every line shown under the table: the caption, the notes of the marks used, the notes."""
        lines = [self.caption] if self.caption else []
        lines += [f"{c.mark}: {c.note}" for c in self.used_caveats()]
        return lines + self.notes


def number(value: Any, column: Column) -> str:
    """The one number formatter: ``value`` as ``column`` shows it (``–`` when it does not exist)."""
    if value is None:
        return MISSING
    if column.kind == "interval":
        low, high = value
        if low is None or high is None:
            return MISSING
        return f"[{_num(low, column)}, {_num(high, column)}]"
    if column.kind == "text":
        return str(value)
    if column.kind == "int":
        return str(int(value))
    if column.kind == "p":
        return f"{float(value):.3g}"
    return _num(value, column)


def _num(x: float, column: Column) -> str:
    return f"{float(x) * column.scale:{'+' if column.signed else ''}.{column.digits}f}"


def csv_header(table: Table) -> list[str]:
    """The CSV columns of a table: every column (an interval as two), then ``caveats``."""
    out: list[str] = []
    for c in table.columns:
        out += [f"{c.key}_low", f"{c.key}_high"] if c.kind == "interval" else [c.key]
    return [*out, "caveats"]


def csv_values(table: Table, row: Row) -> list[Any]:
    """One row's CSV values, unscaled and unrounded (None stays empty)."""
    out: list[Any] = []
    for c in table.columns:
        value = row.values.get(c.key)
        out += list(value or (None, None)) if c.kind == "interval" else [value]
    return [*out, ";".join(row.caveats)]


def sections(keys: Iterable[Any]) -> list[bool]:
    """True where a group starts (after the first row)."""
    out, last = [], object()
    for i, k in enumerate(keys):
        out.append(i > 0 and k != last)
        last = k
    return out


# -- scores ------------------------------------------------------------------------------------------

LEADERBOARD_CAPTION = (
    "x100. N: items decided both ways (per direction: N und, N gen). unsup/fail: outputs the model cannot "
    "produce / failed to. Succ: right both ways. Und/Gen: accuracy per direction. both/und only/gen only/"
    "neither: joint outcomes of items decided both ways. Cons: share whose directions agree. Gap: the "
    "paper-compatible Gap Score. ±frag: its largest change under 1e-6 input noise."
)

REFERENCE_CAVEATS = {
    "boundary": Caveat(
        code="boundary",
        mark="*",
        note="a direction was answered all right or all wrong (for Overall: in some category), so the "
        "fit's bounds set this Gap, not the data: read the accuracies instead",
    ),
    "fragile": Caveat(
        code="fragile",
        mark="†",
        note="its change under 1e-6 input noise exceeds its size: neither its size nor its sign is "
        "determined",
    ),
}


def leaderboard_table(
    rows: Sequence[LeaderRow],
    *,
    title: str = "GapEval leaderboard",
    coupling: str = "categories",
    platform: str | None = None,
) -> Table:
    """The leaderboard: per model and category, accuracies, joint outcomes, the paper-compatible Gap."""
    columns = [
        Column(key="model", title="model", kind="text"),
        Column(key="category", title="category", kind="text"),
        Column(key="n_paired", title="N", kind="int", help="items decided both ways"),
        Column(key="und_n", title="N und", kind="int", help="items decided in understanding"),
        Column(key="gen_n", title="N gen", kind="int", help="items decided in generation"),
        Column(key="unsupported", title="unsup", kind="int", help="outputs the model cannot produce"),
        Column(key="failed", title="fail", kind="int", help="outputs the model failed to produce"),
        Column(key="succ", title="Succ", help="right both ways"),
        Column(key="und", title="Und", help="understanding accuracy"),
        Column(key="gen", title="Gen", help="generation accuracy"),
        Column(key="p_both", title="both", scale=100, terminal=False, help="right both ways"),
        Column(
            key="p_und_only", title="und only", scale=100, terminal=False, help="understood, failed to draw"
        ),
        Column(key="p_gen_only", title="gen only", scale=100, terminal=False, help="drew, failed to answer"),
        Column(key="p_neither", title="neither", scale=100, terminal=False, help="wrong both ways"),
        Column(key="consistency", title="Cons", help="share of items whose two directions agree"),
        Column(key="gap", title="Gap", help="paper-compatible Gap Score"),
        Column(key="gap_fragility", title="±frag", digits=2, help="largest change under 1e-6 input noise"),
        Column(key="judges", title="judges", kind="text", shown=False),
    ]
    out = []
    for r, section in zip(rows, sections(r.model for r in rows), strict=True):
        values = r.model_dump(exclude={"joint", "run", "caveats"})
        values.update(zip((f"p_{k}" for k in JOINT), r.joint, strict=True))
        out.append(Row(values=values, caveats=list(r.caveats), section=section))
    if coupling == "models":
        title += " (models-coupled Gap, the appendix reading)"
    judged = dict.fromkeys(f"{r.model}: judged by {r.judges}" for r in rows if r.category == "Overall")
    return Table(
        name="leaderboard",
        title=title,
        columns=columns,
        rows=out,
        caption=LEADERBOARD_CAPTION,
        caveats=REFERENCE_CAVEATS,
        marked={"boundary": ["gap"], "fragile": ["gap", "gap_fragility"]},
        notes=[*judged, *([platform] if platform else [])],
    )


MIRT_CAPTION = (
    "Logits; gap > 0: understanding ahead. CI: ±1.96 SE from the observed information; boot CI: "
    "percentile bootstrap over questions. 0-1: |gap|/(1+|gap|), the paper's scale. und only/gen only: "
    "questions answered right in that direction only. p: McNemar's exact test of no gap on them; p (Holm): "
    "adjusted over all models and groups."
)

MIRT_CAVEATS = {
    "boundary": Caveat(
        code="boundary",
        mark="*",
        note="a direction was answered all right or all wrong, so no finite estimate exists: the weak "
        "N(0, 10²) ability prior sets the gap and its intervals; read the accuracies and p, not these",
    ),
}


def mirt_table(analysis: GapAnalysis, *, groups: Sequence[str] | None = None) -> Table:
    """The identified gap per model and group (paired-question MIRT), with intervals and the test.

    ``groups`` keeps only those groups (``["Overall"]`` for a summary).
    """
    columns = [
        Column(key="model", title="model", kind="text"),
        Column(key="group", title="group", kind="text"),
        Column(key="theta_und", title="θ und", digits=2, signed=True),
        Column(key="theta_gen", title="θ gen", digits=2, signed=True),
        Column(key="gap", title="gap", digits=3, signed=True, help="θ und - θ gen"),
        Column(key="se", title="SE", digits=3, shown=False),
        Column(key="wald", title="CI (±1.96 SE)", kind="interval", digits=2, signed=True),
        Column(
            key="ci",
            title=f"boot CI ({round(100 * analysis.ci)}%)",
            kind="interval",
            digits=2,
            signed=True,
            help=f"bootstrap over {analysis.n_boot} resamples of questions",
        ),
        Column(key="gap01", title="0-1", digits=3, help="|gap|/(1+|gap|)"),
        Column(key="n10", title="und only", kind="int", help="questions right in understanding only"),
        Column(key="n01", title="gen only", kind="int", help="questions right in generation only"),
        Column(key="p_nogap", title="p", kind="p", help="McNemar's exact test of no gap"),
        Column(key="p_adjusted", title="p (Holm)", kind="p", help="Holm-adjusted over all models and groups"),
    ]
    estimates = [e for e in analysis.estimates if groups is None or e.group in groups]
    several = len({e.model for e in estimates}) > 1  # one model: one row per group, no groups to mark
    rows = []
    for e, section in zip(estimates, sections(e.group if several else "" for e in estimates), strict=True):
        values = e.model_dump(exclude={"wald_low", "wald_high", "ci_low", "ci_high", "at_boundary"})
        values["wald"] = (e.wald_low, e.wald_high) if e.wald_low is not None else None
        values["ci"] = (e.ci_low, e.ci_high) if e.ci_low is not None else None
        rows.append(Row(values=values, caveats=["boundary"] if e.at_boundary else [], section=section))
    fits = analysis.fits
    notes = []
    if fits:
        bad = [f.group for f in fits if not f.converged]
        notes.append(
            f"fit: {fits[0].structure} question effects, sd und {fits[0].sd_und:.2f}, sd gen "
            f"{fits[0].sd_gen:.2f}, rho {fits[0].rho:.2f}; "
            f"max |gradient| {max(f.grad_norm for f in fits):.1e}; "
            + (f"NOT CONVERGED: {', '.join(bad)}" if bad else "all fits converged")
            + (
                ""
                if analysis.ability_correlation is None
                else f"; corr(θ und, θ gen) across models {analysis.ability_correlation:.2f}"
            )
        )
    return Table(
        name="mirt_gap",
        title="Identified gap (paired-question MIRT)",
        columns=columns,
        rows=rows,
        caption=MIRT_CAPTION,
        caveats=MIRT_CAVEATS,
        marked={"boundary": ["gap", "wald", "ci", "gap01"]},
        notes=notes,
    )


def score_tables(
    result: ScoreResult, *, title: str = "GapEval leaderboard", coupling: str = "categories"
) -> list[Table]:
    """The tables of a score: the leaderboard (when it has rows) and the identified gap (when fitted)."""
    out = []
    if result.leaderboard:
        out.append(
            leaderboard_table(result.leaderboard, title=title, coupling=coupling, platform=result.platform)
        )
    if result.mirt is not None:
        out.append(mirt_table(result.mirt))
    if result.corrected:
        out.append(corrected_table(result.corrected, judge=result.audit_judge or "the judge"))
    return out


#: The audit's counts: outputs both decided, and the confusion cells (a truly right output is a positive).
CONFUSION = {
    "n": "outputs both decided",
    "tp": "truly right, passed",
    "fn": "truly right, failed",
    "fp": "truly wrong, passed",
    "tn": "truly wrong, failed",
}


def audit_table(audit: Audit) -> Table:
    """A judge against the truth per direction and category, with the test of equal error both ways."""
    level = f"{round(100 * audit.ci)}%"
    columns = [
        Column(key="direction", title="direction", kind="text"),
        Column(key="category", title="category", kind="text"),
        *(
            Column(key=key, title=key if key == "n" else key.upper(), kind="int", help=help)
            for key, help in CONFUSION.items()
        ),
        Column(key="sensitivity", title="sensitivity", digits=3, help="passed among the truly right"),
        Column(key="sensitivity_ci", title=f"{level} CI", kind="interval", digits=3),
        Column(key="specificity", title="specificity", digits=3, help="failed among the truly wrong"),
        Column(key="specificity_ci", title=f"{level} CI ", kind="interval", digits=3),
        Column(key="accuracy", title="accuracy", digits=3),
        Column(key="kappa", title="kappa", digits=3, help="Cohen's kappa with the truth"),
        Column(key="kappa_ci", title=f"{level} CI  ", kind="interval", digits=3, terminal=False),
    ]
    rows = []
    for r, section in zip(audit.rows, sections(r.direction for r in audit.rows), strict=True):
        values: dict[str, Any] = {"direction": r.direction, "category": r.category, "n": r.n, "tp": r.tp,
                                  "fn": r.fn, "fp": r.fp, "tn": r.tn, "accuracy": r.accuracy.value,
                                  "kappa": r.kappa}  # fmt: skip
        for name in ("sensitivity", "specificity"):
            rate = getattr(r, name)
            values[name] = rate.value
            values[f"{name}_ci"] = (rate.low, rate.high) if rate.low is not None else None
        values["kappa_ci"] = (r.kappa_low, r.kappa_high) if r.kappa_low is not None else None
        rows.append(Row(values=values, section=section))
    notes = []
    for b in audit.bias:
        if b.difference is None:
            notes.append(f"{b.rate}: not measured in both directions")
            continue
        reads = "the judge errs differently in the two directions" if b.p is not None and b.p < 0.05 else (
            "no evidence that it differs between the directions")  # fmt: skip
        notes.append(f"{b.rate}: und {b.und:.3f} vs gen {b.gen:.3f}, difference {b.difference:+.3f} "
                     f"[{b.low:+.3f}, {b.high:+.3f}], p = {b.p:.3g}: {reads}")  # fmt: skip
    return Table(
        name="audit",
        title=f"Audit of {audit.judge} against {audit.truth}",
        columns=columns,
        rows=rows,
        caption="A truly right output is a positive. Sensitivity and specificity with Wilson intervals, "
        "kappa with a bootstrap interval; the difference between the directions with Newcombe's interval and "
        "Fisher's exact test. A judge that misses right images more often than right answers shows a gap "
        "the model does not have: gapeval score --judge-audit FILE corrects for it.",
        notes=notes,
    )


#: The joint outcomes, in the order of every joint table.
JOINT = ("both", "und_only", "gen_only", "neither")

CORRECTION_CAVEATS = {
    "clipped": Caveat(
        code="clipped",
        mark="‡",
        note="the correction left [0, 1] and was clipped: the judge errs more than the audit says here, or "
        "the audit is too small",
    ),
}


def corrected_table(corrected: Sequence[Corrected], *, judge: str) -> Table:
    """Per model, the scores as the judge gave them and corrected for its audited error."""
    columns = [
        Column(key="model", title="model", kind="text"),
        Column(key="group", title="category", kind="text", help="Overall, or a category fitted on its own"),
        Column(key="und_raw", title="Und", scale=100, help="as judged"),
        Column(key="und", title="Und corrected", scale=100),
        Column(key="gen_raw", title="Gen", scale=100, help="as judged"),
        Column(key="gen", title="Gen corrected", scale=100),
        Column(key="gap_raw", title="gap", digits=3, signed=True, help="the identified gap as judged"),
        Column(key="gap", title="gap corrected", digits=3, signed=True),
        Column(
            key="ci", title="interval", kind="interval", digits=2, signed=True, help="questions and audit"
        ),
        *(Column(key=f"p_{k}", title=k.replace("_", " "), scale=100, terminal=False) for k in JOINT),
    ]
    rows = []
    pooled = [f"{c.model} / {c.group}: {', '.join(c.pooled)}" for c in corrected if c.pooled]
    for c in corrected:
        values: dict[str, Any] = c.model_dump(
            include={"model", "group", "und_raw", "und", "gen_raw", "gen", "gap_raw", "gap"}
        )
        values["ci"] = (c.low, c.high) if c.low is not None else None
        values.update(zip((f"p_{k}" for k in JOINT), c.joint, strict=True))
        flagged = c.und_flag or c.gen_flag or c.joint_flag
        rows.append(Row(values=values, caveats=["clipped"] if flagged else []))
    boots = corrected[0].n_boot if corrected else 0
    return Table(
        name="corrected",
        title=f"Corrected for the audited error of {judge}",
        columns=columns,
        rows=rows,
        caption="x100 for accuracies. Und/Gen corrected: Rogan-Gladen with the audit's sensitivity and "
        "specificity per direction; gap corrected: the identified gap with a misclassification layer, its "
        f"interval a percentile bootstrap over {boots} resamples of questions and audit together; "
        "both..neither: the joint shares corrected. A category row is fitted on that category's questions "
        "with the judge's rates there.",
        notes=[f"with the overall rates where the audit cannot estimate a category's: {'; '.join(pooled)}"]
        if pooled
        else [],
        caveats=CORRECTION_CAVEATS,
        marked={"clipped": ["und", "gen", "p_both", "p_und_only", "p_gen_only", "p_neither"]},
    )


def joint_table(scores: RunScores) -> Table:
    """One run's joint outcomes per category: expected counts over the items decided both ways."""
    columns = [
        Column(key="category", title="category", kind="text"),
        Column(key="both", title="both right"),
        Column(key="und_only", title="und only"),
        Column(key="gen_only", title="gen only"),
        Column(key="neither", title="both wrong"),
        Column(key="missing", title="missing", kind="int", help="items not decided both ways"),
    ]
    rows = []
    for name, g in {**scores.categories, "Overall": scores.overall}.items():
        j = g.joint
        values = {"category": name, "both": j.both, "und_only": j.und_only, "gen_only": j.gen_only,
                  "neither": j.neither, "missing": g.missing}  # fmt: skip
        rows.append(Row(values=values))
    return Table(
        name="joint",
        title=f"Joint outcomes: {scores.model}",
        columns=columns,
        rows=rows,
        caption="Expected counts over the items decided both ways (fractional where judges average).",
    )


def reference_gap_table(
    results: dict[str, ReferenceGap], fragility: dict[str, Fragility], *, coupling: str, fragility_n: int
) -> Table:
    """Paper-compatible Gap Scores of joint tables in the authors' format: per model, each row, the mean."""
    columns = [
        Column(key="model", title="model", kind="text"),
        Column(key="row", title="row", kind="text"),
        Column(key="gap", title="gap", digits=6),
        Column(key="fragility", title="±frag", digits=4, help="largest change under 1e-6 input noise"),
    ]
    rows: list[Row] = []
    for model, r in results.items():
        f = fragility.get(model)
        per_row = list(f.max_abs_change) if f else [None] * len(r.gaps)
        changes = [*per_row, f.mean_max_abs_change if f else None]
        labels = [str(k + 1) for k in range(len(r.gaps))] + ["mean"]
        for k, (label, gap, change) in enumerate(zip(labels, [*r.gaps, r.gap_mean], changes, strict=True)):
            fragile = change is not None and change > abs(gap)
            values = {"model": model, "row": label, "gap": gap, "fragility": change}
            rows.append(
                Row(values=values, caveats=["fragile"] if fragile else [], section=k == 0 and bool(rows))
            )
    title = "Paper-compatible Gap Score" + (
        " (models-coupled, the appendix reading)" if coupling == "models" else ""
    )
    caption = (
        f"±frag: largest change over {fragility_n} refits with N(0, 1e-6) noise on the inputs."
        if fragility
        else ""
    )
    return Table(
        name="gap_score",
        title=title,
        columns=columns,
        rows=rows,
        caption=caption,
        caveats={"fragile": REFERENCE_CAVEATS["fragile"]},
        marked={"fragile": ["gap", "fragility"]},
    )


def correlation_table(results: Sequence[Correlation]) -> Table:
    """Gaps against external benchmark scores: rank correlations with bootstrap intervals over models."""
    columns = [
        Column(key="score", title="score", kind="text"),
        Column(key="n_models", title="models", kind="int"),
        Column(key="spearman", title="Spearman", digits=3, signed=True),
        Column(key="spearman_ci", title="95% CI", kind="interval", digits=2, signed=True),
        Column(key="spearman_p", title="p", kind="p"),
        Column(key="kendall", title="Kendall", digits=3, signed=True),
        Column(key="kendall_ci", title="95% CI ", kind="interval", digits=2, signed=True),
        Column(key="kendall_p", title="p ", kind="p"),
    ]
    rows = [Row(values=r.model_dump()) for r in results]
    return Table(name="correlation", title="Gap vs external scores", columns=columns, rows=rows,
                 caption="CIs: percentile bootstrap over models.")  # fmt: skip


def reliability_table(res: Reliability) -> Table:
    """Agreement among raters, pair by pair per direction, with Krippendorff's alpha over all of them."""
    columns = [
        Column(key="pair", title="pair", kind="text"),
        Column(key="direction", title="direction", kind="text"),
        Column(key="n", title="n", kind="int", help="items both decided"),
        Column(key="accuracy", title="agree", digits=3, help="share of equal pass/fail verdicts"),
        Column(key="kappa", title="kappa", digits=3, help="Cohen's kappa"),
        Column(key="pearson", title="Pearson r", digits=4, help="over the verdicts' scores, as the paper"),
    ]
    order = {r: k for k, r in enumerate(res.raters)}
    pairs = sorted(res.pairs, key=lambda p: (order[p.first], order[p.second]))  # stable: all, und, gen
    starts = sections((p.first, p.second) for p in pairs)
    rows = [Row(values={**p.model_dump(), "pair": f"{p.first} vs {p.second}"}, section=section)
            for p, section in zip(pairs, starts, strict=True)]  # fmt: skip
    alpha = ", ".join(
        f"{d} {res.alpha[d]:.3f} ({res.units[d]} items)" if res.alpha[d] is not None else f"{d} –"
        for d in ("all", "und", "gen")
    )
    return Table(
        name="reliability",
        title=f"Agreement among {len(res.raters)} raters",
        columns=columns,
        rows=rows,
        caption="Per pair, on the items both decided (a score of 0.5 or more passes).",
        notes=[f"Krippendorff's alpha (nominal) over all raters: {alpha}"],
    )


def agreement_table(judge: str, other: str, res: Agreement) -> Table:
    """A judge's agreement with labels or another judge, per category, with the totals as notes."""
    columns = [
        Column(key="category", title="category", kind="text"),
        Column(key="n", title="n", kind="int"),
        Column(key="accuracy", title="accuracy", digits=3),
        Column(key="kappa", title="kappa", digits=3),
    ]
    rows = [Row(values=c.model_dump()) for c in res.per_category]
    return Table(
        name="agreement",
        title=f"{judge} vs {other}, per category",
        columns=columns,
        rows=rows,
        notes=[
            f"{judge} vs {other}: n={res.n}, accuracy {res.accuracy:.3f}, Cohen's kappa {res.kappa:.3f}, "
            f"Pearson r {res.pearson:.3f}",
            f"confusion (rows {judge} pass/fail, columns {other} pass/fail): {res.confusion}",
        ],
    )


def label_plan_table(plan: LabelPlan) -> Table:
    """A labelling sample per stratum: what it holds, what was drawn, and the labels an interval needs."""
    columns = [
        Column(key="direction", title="direction", kind="text"),
        Column(key="category", title="category", kind="text"),
        Column(key="outputs", title="outputs", kind="int", help="outputs that can be drawn"),
        Column(key="judge_pass", title="judge passes", digits=2, help="the judge's share of passes"),
        Column(key="drawn", title="drawn", kind="int", help="outputs in the sample"),
        Column(key="for_sensitivity", title="labels for sens.", kind="int",
               help="labels for a sensitivity interval of the planned width"),
        Column(key="for_specificity", title="labels for spec.", kind="int",
               help="labels for a specificity interval of the planned width"),
    ]  # fmt: skip
    rows = [Row(values=s.model_dump()) for s in plan.strata]
    level = f"{round(100 * plan.ci)}%"
    return Table(
        name="label_plan",
        title=f"Labelling sample: {len(plan.sample)} outputs, stratified by direction x category",
        columns=columns,
        rows=rows,
        caption=(
            f"For a {level} interval of width {plan.width:g} on a rate, about {plan.per_rate} outputs of "
            "the truth class it is measured on are needed (worst case); a stratum needs that many divided "
            "by the share expected in the class (the judge's pass share stands in for the truth's)."
        ),
    )


def listing_table(kind: str, entries: dict[str, dict[str, str | None]]) -> Table:
    """What gapeval can load of one kind (models, judges, executors): what each is, does and needs."""
    columns = [
        Column(key="name", title="name", kind="text"),
        Column(key="description", title="what", kind="text"),
        Column(key="does", title="does", kind="text", shown=kind == "models"),
        Column(key="needs", title="needs", kind="text"),
        Column(key="example", title="example", kind="text", shown=kind == "models"),
    ]
    rows = []
    for name, e in entries.items():
        needs = f"pip install 'gapeval[{e['extra']}]'" if e.get("extra") else ""
        rows.append(Row(values={**e, "name": name, "needs": needs}))
    return Table(name=kind, title=kind, columns=columns, rows=rows)
