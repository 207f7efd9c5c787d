"""How far a judge can be trusted in each direction, and the scores corrected for its error.

An **audit** sets a judge's verdicts beside the truth on the same outputs: an exact judge (``scene`` on the
built-in world, whose verdicts are the truth) or people's labels. A truly right output is a positive:

- sensitivity: the share of truly right outputs the judge passes; specificity: the share of truly wrong
  ones it fails; both with Wilson score intervals; accuracy, and Cohen's kappa with a bootstrap interval;
- per direction and per category, with the confusion matrices;
- the test that matters for a gap: does the judge err equally in both directions? The difference in
  sensitivity (and in specificity) between understanding and generation, with Newcombe's hybrid score
  interval and Fisher's exact test. A judge that misses right images more often than right answers makes
  a model look "understanding ahead" when it is not.

The **correction** takes an audit's per-direction rates to the scores of the same judge:

- per-direction accuracy by Rogan-Gladen, ``(observed + specificity - 1) / (sensitivity + specificity -
  1)``, flagged (and clipped) where it leaves [0, 1];
- the joint table by inverting each direction's misclassification matrix (judge errors independent
  across the two directions given the truth), flagged (and projected) where a share goes negative;
- the identified MIRT gap with a misclassification layer: an observed verdict passes with probability
  ``sens * P(right) + (1 - spec) * (1 - P(right))`` per direction (:func:`gapeval.scoring.mirt.fit`'s
  ``misclass``). Its interval is a percentile bootstrap that resamples the questions (stratified by
  category) **and** the audit: each resample redraws the audit's confusion counts (binomially, from its
  positives and negatives, which is the nonparametric bootstrap of independent audited outputs), so the
  interval carries both the questions' and the audit's uncertainty. Prediction-powered inference would
  need the audit's outputs to be a random sample of the scored ones; the bootstrap needs only that the
  judge errs at the same rates on both, which is the assumption the correction makes anyway.

The rates are per direction over the whole audit (per category too in the audit itself, where the
labels suffice); the correction uses the per-direction rates for every question.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel
from scipy.stats import fisher_exact, norm

from gapeval.records import OutputStatus, RunRecords
from gapeval.scoring.gap_analysis import resample_weights
from gapeval.scoring.joint import VerdictIndex
from gapeval.scoring.mirt import MirtFit, Responses, fit, refit_newton

DIRECTIONS = ("und", "gen")


class Rate(BaseModel):
    """A proportion with its Wilson score interval.

    Attributes:
        value: ``k / n`` (None when ``n`` is 0).
        low, high: The interval's ends (None when ``n`` is 0).
        k, n: Successes and trials.

    """

    value: float | None
    low: float | None
    high: float | None
    k: int
    n: int


class AuditRow(BaseModel):
    """A judge against the truth in one direction and one category (or ``Overall``).

    Attributes:
        direction: ``und`` or ``gen``.
        category: A category, or ``Overall``.
        tp, fn, fp, tn: Truly right and passed, truly right and failed, truly wrong and passed, truly
            wrong and failed.
        sensitivity: Passed among the truly right.
        specificity: Failed among the truly wrong.
        accuracy: Agreeing with the truth.
        kappa, kappa_low, kappa_high: Cohen's kappa and its bootstrap interval (None when undefined).
        prevalence: The share of truly right outputs.

    """

    direction: str
    category: str
    tp: int
    fn: int
    fp: int
    tn: int
    sensitivity: Rate
    specificity: Rate
    accuracy: Rate
    kappa: float | None
    kappa_low: float | None
    kappa_high: float | None
    prevalence: float | None

    @property
    def n(self) -> int:
        """Outputs audited."""
        return self.tp + self.fn + self.fp + self.tn


class Difference(BaseModel):
    """A rate in understanding minus the same rate in generation.

    Attributes:
        rate: ``sensitivity`` or ``specificity``.
        und, gen: The rate in each direction.
        difference: ``und - gen`` (None when either is undefined).
        low, high: Newcombe's hybrid score interval of the difference.
        p: Fisher's exact test of equal rates.

    """

    rate: str
    und: float | None
    gen: float | None
    difference: float | None
    low: float | None
    high: float | None
    p: float | None


class Audit(BaseModel):
    """How far a judge can be trusted, per direction: what ``gapeval audit`` writes.

    Attributes:
        run: The run audited.
        judge: The judge id audited.
        truth: The truth: an exact judge's id or the labels file.
        ci: The intervals' level.
        rows: Per direction, Overall then per category.
        bias: Understanding minus generation, in sensitivity and in specificity.

    """

    run: str
    judge: str
    truth: str
    ci: float = 0.95
    rows: list[AuditRow]
    bias: list[Difference]

    def overall(self, direction: str) -> AuditRow:
        """The direction's Overall row."""
        return next(r for r in self.rows if r.direction == direction and r.category == "Overall")

    def counts(self) -> np.ndarray:
        """(2, 4) confusion counts ``[tp, fn, fp, tn]`` per direction (und, gen)."""
        return np.array([[(r := self.overall(d)).tp, r.fn, r.fp, r.tn] for d in DIRECTIONS], dtype=float)

    def rates(self) -> np.ndarray:
        """(2, 2) ``[sensitivity, false-pass rate]`` per direction: the MIRT fit's ``misclass``."""
        return misclassification(self.counts())

    def category_counts(self) -> dict[str, np.ndarray]:
        """Per category, (2, 4) confusion counts per direction (zeros where a direction has none)."""
        out: dict[str, np.ndarray] = {}
        for r in self.rows:
            if r.category != "Overall" and r.direction in DIRECTIONS:
                out.setdefault(r.category, np.zeros((2, 4)))[DIRECTIONS.index(r.direction)] = [
                    r.tp, r.fn, r.fp, r.tn,
                ]  # fmt: skip
        return out


def misclassification(counts: np.ndarray) -> np.ndarray:
    """``[sensitivity, false-pass rate]`` per direction from ``[tp, fn, fp, tn]`` counts."""
    c = np.asarray(counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.stack([c[:, 0] / (c[:, 0] + c[:, 1]), c[:, 2] / (c[:, 2] + c[:, 3])], axis=1)


def wilson(k: int, n: int, ci: float = 0.95) -> Rate:
    """``k / n`` with its Wilson score interval."""
    if n == 0:
        return Rate(value=None, low=None, high=None, k=k, n=n)
    z = float(norm.ppf(0.5 + ci / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Rate(value=p, low=max(0.0, centre - half), high=min(1.0, centre + half), k=k, n=n)


def newcombe(a: Rate, b: Rate) -> tuple[float | None, float | None, float | None]:
    """``a - b`` with Newcombe's hybrid score interval (his method 10), from two Wilson intervals."""
    if a.value is None or b.value is None or a.low is None or b.low is None:
        return None, None, None
    assert a.high is not None and b.high is not None
    d = a.value - b.value
    low = d - np.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = d + np.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return d, float(low), float(high)


def cohen_kappa(tp: float, fn: float, fp: float, tn: float) -> float | None:
    """Cohen's kappa of two pass/fail raters from their 2x2 counts (None when undefined)."""
    n = tp + fn + fp + tn
    if n == 0:
        return None
    po = (tp + tn) / n
    pe = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    return None if pe >= 1.0 else float((po - pe) / (1 - pe))


def _row(
    direction: str, category: str, truth: np.ndarray, seen: np.ndarray, ci: float, rng: np.random.Generator
) -> AuditRow:
    tp, fn = int(np.sum(truth & seen)), int(np.sum(truth & ~seen))
    fp, tn = int(np.sum(~truth & seen)), int(np.sum(~truth & ~seen))
    n = tp + fn + fp + tn
    kappa = cohen_kappa(tp, fn, fp, tn)
    low = high = None
    if kappa is not None and n:
        draws = rng.multinomial(n, np.array([tp, fn, fp, tn]) / n, size=2000)
        ks = np.array([k for k in (cohen_kappa(*d) for d in draws) if k is not None])
        if len(ks):
            low, high = (float(x) for x in np.quantile(ks, [(1 - ci) / 2, (1 + ci) / 2]))
    return AuditRow(direction=direction, category=category, tp=tp, fn=fn, fp=fp, tn=tn,
                    sensitivity=wilson(tp, tp + fn, ci), specificity=wilson(tn, fp + tn, ci),
                    accuracy=wilson(tp + tn, n, ci), kappa=kappa, kappa_low=low, kappa_high=high,
                    prevalence=(tp + fn) / n if n else None)  # fmt: skip


@dataclass(frozen=True)
class Pair:
    """One audited output: its direction and category, the truth, and what the judge said."""

    direction: str
    category: str
    truth: bool
    observed: bool


def audit(
    pairs: Sequence[Pair], *, run: str, judge: str, truth: str, ci: float = 0.95, seed: int = 0
) -> Audit:
    """The audit of a judge from its verdicts paired with the truth (see the module's description)."""
    rng = np.random.default_rng(seed)
    rows: list[AuditRow] = []
    for d in DIRECTIONS:
        mine = [p for p in pairs if p.direction == d]
        for cat in ["Overall", *sorted({p.category for p in mine})]:
            sel = [p for p in mine if cat == "Overall" or p.category == cat]
            t = np.array([p.truth for p in sel], dtype=bool)
            o = np.array([p.observed for p in sel], dtype=bool)
            rows.append(_row(d, cat, t, o, ci, rng))
    und = next(r for r in rows if r.direction == "und" and r.category == "Overall")
    gen = next(r for r in rows if r.direction == "gen" and r.category == "Overall")
    bias = []
    for rate, a, b, table in (
        ("sensitivity", und.sensitivity, gen.sensitivity, [[und.tp, und.fn], [gen.tp, gen.fn]]),
        ("specificity", und.specificity, gen.specificity, [[und.tn, und.fp], [gen.tn, gen.fp]]),
    ):
        diff, low, high = newcombe(a, b)
        p = float(fisher_exact(table).pvalue) if a.n and b.n else None
        bias.append(Difference(rate=rate, und=a.value, gen=b.value, difference=diff, low=low, high=high, p=p))
    return Audit(run=run, judge=judge, truth=truth, ci=ci, rows=rows, bias=bias)


# -- pairing a run's verdicts with the truth (pure functions of its records) -----------------------------


def _category(records: RunRecords, item_id: str) -> str:
    """An item's GapEval category in the run ("" for an item the run does not describe)."""
    return records.items[item_id][0].value if item_id in records.items else ""


def judge_pairs(records: RunRecords, judge: str, truth: str) -> list[Pair]:
    """Outputs both judges decided: ``truth``'s verdict as the truth, ``judge``'s as observed."""
    index = VerdictIndex(records)
    out = []
    for o in records.outputs:
        if o.status is not OutputStatus.DONE:
            continue
        mine, true = index.choose(o, [judge]), index.choose(o, [truth])
        if mine is None or true is None or mine.score is None or true.score is None:
            continue
        cat = _category(records, o.item_id)
        out.append(Pair(str(o.direction), cat, true.score >= 0.5, mine.score >= 0.5))
    return out


def label_pairs(records: RunRecords, judge: str, labels: Mapping[tuple[str, str, int], bool]) -> list[Pair]:
    """Outputs ``judge`` decided that people labelled: ``(item_id, direction, sample) -> right``."""
    index = VerdictIndex(records)
    out = []
    for o in records.outputs:
        key = (o.item_id, str(o.direction), o.sample)
        if key not in labels:
            continue
        mine = index.choose(o, [judge])
        if mine is None or mine.score is None:
            continue
        cat = _category(records, o.item_id)
        out.append(Pair(str(o.direction), cat, labels[key], mine.score >= 0.5))
    return out


# -- the correction ----------------------------------------------------------------------------------------


class Corrected(BaseModel):
    """One model's scores, raw and corrected for the audited judge's error.

    Attributes:
        model: The model.
        group: ``Overall``, or a category (corrected with that category's rates, fitted on its questions).
        pooled: Directions of a category row corrected with the overall rates (the audit cannot estimate
            the category's there: no truly right or wrong outputs, or a judge no better than chance).
        und_raw, gen_raw: The observed accuracy per direction (items decided in it).
        und, gen: Rogan-Gladen corrected (clipped to [0, 1]).
        und_flag, gen_flag: The correction left [0, 1] (the judge is worse than the audit says, or the
            audit is too small).
        joint_raw, joint: ``[both, und only, gen only, neither]`` shares over items decided both ways.
        joint_flag: A corrected share went negative (projected back to the simplex).
        gap_raw: The identified MIRT gap of the observed verdicts.
        gap: The gap with the misclassification layer.
        low, high: Its percentile interval (questions and audit resampled together).
        n_boot: Resamples behind it.

    """

    model: str
    group: str = "Overall"
    pooled: list[str] = []
    und_raw: float | None
    gen_raw: float | None
    und: float | None
    gen: float | None
    und_flag: bool
    gen_flag: bool
    joint_raw: list[float]
    joint: list[float]
    joint_flag: bool
    gap_raw: float
    gap: float
    low: float | None
    high: float | None
    n_boot: int


def rogan_gladen(observed: float, sens: float, false_pass: float) -> tuple[float, bool]:
    """The true share from the observed pass share; flagged when it leaves [0, 1] (then clipped)."""
    youden = sens - false_pass
    if youden <= 0:
        raise ValueError("the judge is no better than chance (sensitivity <= false-pass rate)")
    value = (observed - false_pass) / youden
    return float(min(1.0, max(0.0, value))), not 0.0 <= value <= 1.0


def correct_joint(shares: Sequence[float], rates: np.ndarray) -> tuple[list[float], bool]:
    """True joint shares from observed ones (judge errors independent across directions given the truth)."""
    q = np.array([[shares[0], shares[1]], [shares[2], shares[3]]])  # rows: und pass/fail; cols: gen
    mats = [
        np.array([[s, f], [1 - s, 1 - f]]) for s, f in rates
    ]  # observed (pass, fail) x true (right, wrong)
    p = np.linalg.solve(mats[0], q) @ np.linalg.inv(mats[1]).T
    flat = p.reshape(-1)
    flagged = bool(np.any(flat < -1e-12))
    flat = np.clip(flat, 0.0, None)
    total = flat.sum()
    return [float(x) for x in (flat / total if total > 0 else flat)], flagged


def _joint(yu: np.ndarray, yg: np.ndarray) -> list[float]:
    both = ~np.isnan(yu) & ~np.isnan(yg)
    u, g = yu[both], yg[both]
    if not len(u):
        return [float("nan")] * 4
    return [float(np.mean(u * g)), float(np.mean(u * (1 - g))), float(np.mean((1 - u) * g)),
            float(np.mean((1 - u) * (1 - g)))]  # fmt: skip


def _usable(counts: np.ndarray) -> np.ndarray:
    """Per direction, whether these counts hold truly right and truly wrong outputs and beat chance."""
    c = np.asarray(counts, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = misclassification(c)
    both = (c[:, 0] + c[:, 1] > 0) & (c[:, 2] + c[:, 3] > 0)
    return np.asarray(both & (np.nan_to_num(rates[:, 0]) > np.nan_to_num(rates[:, 1])))


def corrected_scores(
    data: Responses,
    counts: np.ndarray,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
    by_category: Mapping[str, np.ndarray] | None = None,
) -> list[Corrected]:
    """Per model, the scores corrected with an audit's confusion ``counts`` (see :meth:`Audit.counts`).

    With ``by_category`` (:meth:`Audit.category_counts`), also per category: each category's questions
    fitted on their own, corrected with that category's rates per direction where the audit estimates
    them (else the direction's overall rates, listed in ``pooled``). A category is fitted apart because
    the gap model draws every question's easiness from one distribution: rates that differ by category
    in one overall fit would meet categories that differ in difficulty and bias the gap (measured: a
    judge harsh on the images of the hardest category only took the overall corrected gap from 0.8 to
    0.2; fitted per category, each category's came out at 0.77).

    Raises:
        ValueError: The audit leaves a direction without truly right or truly wrong outputs, or finds
            the judge no better than chance in a direction.

    """
    counts = np.asarray(counts, dtype=float)
    if np.any(counts[:, 0] + counts[:, 1] == 0) or np.any(counts[:, 2] + counts[:, 3] == 0):
        raise ValueError("the audit needs truly right and truly wrong outputs in both directions")
    if not np.all(_usable(counts)):
        raise ValueError("the judge is no better than chance in a direction (sensitivity <= false-pass rate)")
    out = _corrected(data, counts, "Overall", [], n_boot, ci, seed)
    cats = np.asarray(data.categories)
    per_category = by_category or {}
    for cat in sorted(set(data.categories)) if by_category is not None else []:
        mine = np.asarray(per_category.get(cat, np.zeros((2, 4))), dtype=float)
        usable = _usable(mine)
        mixed = np.where(usable[:, None], mine, counts)
        pooled = [d for d, ok in zip(DIRECTIONS, usable, strict=True) if not ok]
        sub = data.subset_items(np.flatnonzero(cats == cat))
        out += _corrected(sub, mixed, cat, pooled, n_boot, ci, seed)
    return out


def _corrected(
    data: Responses, counts: np.ndarray, group: str, pooled: list[str], n_boot: int, ci: float, seed: int
) -> list[Corrected]:
    rates = misclassification(counts)
    raw = fit(data, with_se=False)
    base = fit(data, misclass=rates)
    boots = _boot(data, base, counts, n_boot, seed) if n_boot else np.empty((0, len(data.models)))
    out = []
    for m, model in enumerate(data.models):
        shares = [float(np.nanmean(data.y[m, :, d])) if np.any(~np.isnan(data.y[m, :, d])) else None
                  for d in range(2)]  # fmt: skip
        fixed = [rogan_gladen(s, *rates[d]) if s is not None else (None, False) for d, s in enumerate(shares)]
        joint_raw = _joint(data.y[m, :, 0], data.y[m, :, 1])
        joint, flag = correct_joint(joint_raw, rates) if not np.isnan(joint_raw[0]) else (joint_raw, False)
        low = high = None
        if len(boots):
            low, high = (float(x) for x in np.quantile(boots[:, m], [(1 - ci) / 2, (1 + ci) / 2]))
        out.append(Corrected(model=model, group=group, pooled=pooled, und_raw=shares[0], gen_raw=shares[1],
                             und=fixed[0][0], gen=fixed[1][0], und_flag=fixed[0][1], gen_flag=fixed[1][1],
                             joint_raw=joint_raw, joint=joint, joint_flag=flag, gap_raw=float(raw.gap[m]),
                             gap=float(base.gap[m]), low=low, high=high, n_boot=len(boots)))  # fmt: skip
    return out


def _redraw(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Confusion counts redrawn binomially from their positives and negatives (the audit resampled)."""
    pos, neg = counts[:, 0] + counts[:, 1], counts[:, 2] + counts[:, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens, fpr = np.nan_to_num(counts[:, 0] / pos), np.nan_to_num(counts[:, 2] / neg)
    tp, fp = rng.binomial(pos.astype(int), sens), rng.binomial(neg.astype(int), fpr)
    return np.stack([tp, pos - tp, fp, neg - fp], axis=1).astype(float)


def _boot(data: Responses, base: MirtFit, counts: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Gaps refitted with questions and audit resampled together."""
    rng = np.random.default_rng(seed)
    cats = np.asarray(data.categories)
    strata = [np.flatnonzero(cats == c) for c in sorted(set(data.categories))]
    m = len(data.models)
    gaps = []
    for _ in range(n_boot):
        w = resample_weights(len(data.items), strata, rng)
        rates = misclassification(_redraw(counts, rng))
        if np.any(rates[:, 0] <= rates[:, 1]):
            continue  # a resample in which the judge is no better than chance: no correction exists
        x, ok = refit_newton(data.y, base, w, misclass=rates)
        if ok:
            gaps.append(x[0 : 2 * m : 2] - x[1 : 2 * m : 2])
        else:
            gaps.append(fit(data.y, weights=w, start=base.params, with_se=False, misclass=rates).gap)
    return np.asarray(gaps).reshape(-1, m)


# -- what to label ----------------------------------------------------------------------------------
class Stratum(BaseModel):
    """One stratum (direction x category) of a labelling sample.

    Attributes:
        direction: ``und`` or ``gen``.
        category: The GapEval category.
        outputs: Outputs in the run that can be drawn (done, and decided by the judge when one is named).
        judge_pass: The judge's share of passes among them (None without a judge).
        for_sensitivity: Labels this stratum needs for a sensitivity interval of the planned width: the
            truly right outputs needed, divided by the share expected to be right (the judge's pass
            share stands in for it).
        for_specificity: The same for specificity (the truly wrong outputs).
        drawn: Outputs drawn into the sample.

    """

    direction: str
    category: str
    outputs: int
    judge_pass: float | None
    for_sensitivity: int | None
    for_specificity: int | None
    drawn: int


class LabelPlan(BaseModel):
    """A stratified sample of outputs for people to label, and the labels each stratum needs.

    Attributes:
        width: The planned interval's full width (e.g. 0.2 for +-0.1).
        ci: The interval's level.
        per_rate: Outputs of one truth class a rate needs for that width at the worst case (a rate of
            0.5): ``ceil(z^2 / 4 / (width / 2)^2)``.
        strata: See :class:`Stratum`.
        sample: The drawn outputs: ``(item_id, direction, sample)``, in drawing order within strata.
        seed: The draw's seed.

    """

    width: float
    ci: float
    per_rate: int
    strata: list[Stratum]
    sample: list[tuple[str, str, int]]
    seed: int


def label_plan(
    records: RunRecords,
    n: int,
    *,
    judge: str | None = None,
    width: float = 0.2,
    ci: float = 0.95,
    seed: int = 0,
) -> LabelPlan:
    """Draw ``n`` outputs stratified by direction x category, and say how many labels each stratum needs.

    Each stratum gets an equal share, capped by what it holds; the rest is spread over the others. Equal
    allocation, not proportional: the audit estimates a rate per stratum, and a small category's
    rate is as much needed as a large one's.
    """
    z = float(norm.ppf(0.5 + ci / 2))
    per_rate = int(np.ceil(z * z / 4 / (width / 2) ** 2))
    index = VerdictIndex(records) if judge else None
    pools: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    passes: dict[tuple[str, str], int] = {}
    for o in records.outputs:
        if o.status is not OutputStatus.DONE:
            continue
        verdict = index.choose(o, [judge]) if index is not None and judge else None
        if index is not None and (verdict is None or verdict.score is None):
            continue
        key = (str(o.direction), _category(records, o.item_id))
        pools.setdefault(key, []).append((o.item_id, str(o.direction), o.sample))
        passes[key] = passes.get(key, 0) + int(verdict is not None and (verdict.score or 0) >= 0.5)
    keys = sorted(pools)
    share = dict.fromkeys(keys, 0)
    left = min(n, sum(len(pools[k]) for k in keys))
    while left > 0:
        open_keys = [k for k in keys if share[k] < len(pools[k])]
        each = max(1, left // len(open_keys))
        for k in open_keys:
            take = min(each, len(pools[k]) - share[k], left)
            share[k] += take
            left -= take
            if left == 0:
                break
    rng = np.random.default_rng(seed)
    sample: list[tuple[str, str, int]] = []
    strata = []
    for k in keys:
        pool = pools[k]
        picked = sorted(int(i) for i in rng.choice(len(pool), size=share[k], replace=False))
        sample += [pool[i] for i in picked]
        q = passes[k] / len(pool) if judge else None
        strata.append(Stratum(
            direction=k[0], category=k[1], outputs=len(pool), judge_pass=q, drawn=share[k],
            for_sensitivity=int(np.ceil(per_rate / q)) if q else None,
            for_specificity=int(np.ceil(per_rate / (1 - q))) if q is not None and q < 1 else None,
        ))  # fmt: skip
    return LabelPlan(width=width, ci=ci, per_rate=per_rate, strata=strata, sample=sample, seed=seed)
