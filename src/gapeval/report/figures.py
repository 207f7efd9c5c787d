"""The report's charts, drawn with matplotlib and written as SVG (for the page and papers) and PNG.

Every figure has a title, axis labels and a legend. SVG text is drawn as paths, so a figure needs no font
and makes no request when the page is opened from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gapeval.scoring.gap_analysis import GapAnalysis
from gapeval.scoring.joint import RunScores

_JOINT = [("both right", "#2e7d32"), ("understood only", "#1565c0"), ("drew only", "#ef6c00"),
          ("both wrong", "#9e9e9e")]  # fmt: skip


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "path", "svg.hashsalt": "gapeval", "font.size": 9})
    return plt


def short(name: str, width: int = 36) -> str:
    """A model's name cut to ``width`` characters in the middle (specs with paths get long)."""
    return name if len(name) <= width else name[: width // 2 - 1] + "…" + name[-(width // 2) :]


def _save(fig: Any, folder: Path, name: str) -> str:
    # bbox_inches="tight" grows the canvas to fit long labels instead of squeezing the axes.
    fig.savefig(folder / f"{name}.svg", metadata={"Date": None}, bbox_inches="tight")
    fig.savefig(folder / f"{name}.png", dpi=144, bbox_inches="tight")
    _plt().close(fig)
    return f"{name}.svg"


def accuracy_by_category(runs: Sequence[RunScores], folder: Path) -> str:
    """Understanding and generation accuracy per category, per model (grouped bars)."""
    plt = _plt()
    cats = sorted({c for r in runs for c in r.categories})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / max(1, len(runs))
    for ax, direction, title in ((axes[0], "und", "Understanding"), (axes[1], "gen", "Generation")):
        for k, r in enumerate(runs):
            vals = [
                100 * (getattr(r.categories[c], f"{direction}_acc") or 0.0) if c in r.categories else 0.0
                for c in cats
            ]
            ax.bar([i + k * width for i in range(len(cats))], vals, width, label=short(r.model))
        ax.set_title(f"{title} accuracy by category")
        ax.set_xticks([i + width * (len(runs) - 1) / 2 for i in range(len(cats))])
        ax.set_xticklabels([c.replace(" ", "\n") for c in cats])
        ax.set_xlabel("category")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].legend(title="model", fontsize=8, loc="upper right")
    return _save(fig, folder, "accuracy_by_category")


def joint_outcomes(runs: Sequence[RunScores], folder: Path) -> str:
    """Joint-outcome shares over paired items, per model (stacked horizontal bars)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 2.2 + 0.45 * len(runs)))
    names = [short(r.model) for r in runs]
    left = [0.0] * len(runs)
    for k, (label, colour) in enumerate(_JOINT):
        vals = [100 * r.overall.joint.shares()[k] for r in runs]
        ax.barh(names, vals, left=left, color=colour, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of items decided both ways (%)")
    ax.set_ylabel("model")
    ax.set_title("Joint outcomes: understanding and generation of the same question")
    ax.invert_yaxis()
    ax.legend(ncol=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.05 * len(runs)))
    return _save(fig, folder, "joint_outcomes")


def abilities(analysis: GapAnalysis, folder: Path, group: str = "Overall") -> str | None:
    """Understanding against generation ability per model, with the diagonal (no gap) and the gap's CI."""
    est = [e for e in analysis.estimates if e.group == group]
    if not est:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    lo = min(min(e.theta_und, e.theta_gen) for e in est) - 0.5
    hi = max(max(e.theta_und, e.theta_gen) for e in est) + 0.5
    ax.plot([lo, hi], [lo, hi], color="#777", linestyle="--", linewidth=1, label="no gap (und = gen)")
    for e in est:
        # The gap is und - gen; its interval, drawn vertically, says how far below the diagonal it may be.
        low = e.ci_low if e.ci_low is not None else e.wald_low
        high = e.ci_high if e.ci_high is not None else e.wald_high
        yerr = None
        if low is not None and high is not None:
            yerr = [[max(0.0, e.gap - low)], [max(0.0, high - e.gap)]]
        ax.errorbar(
            [e.theta_und],
            [e.theta_gen],
            yerr=yerr,
            fmt="o",
            capsize=3,
            label=f"{short(e.model)} (gap {e.gap:.2f})",
        )
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("understanding ability (logit)")
    ax.set_ylabel("generation ability (logit)")
    ax.set_title(f"Abilities ({group}); bars: {int(100 * analysis.ci)}% interval of the gap")
    ax.legend(fontsize=7, loc="upper left")
    return _save(fig, folder, "abilities")


def gap_heatmap(rows: dict[str, dict[str, float | None]], folder: Path, what: str) -> str | None:
    """Gap per model (rows) and category (columns)."""
    if not rows:
        return None
    plt = _plt()
    models = list(rows)
    cats = sorted({c for r in rows.values() for c in r})
    grid = [[rows[m].get(c) for c in cats] for m in models]
    values = [[float("nan") if v is None else v for v in row] for row in grid]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(cats), 1.2 + 0.45 * len(models)))
    image = ax.imshow(
        values, cmap="RdBu_r", aspect="auto", vmin=-max(1e-9, _absmax(values)), vmax=_absmax(values)
    )
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(j, i, "–" if v is None else f"{v:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels([c.replace(" ", "\n") for c in cats])
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels([short(m) for m in models])
    ax.set_xlabel("category")
    ax.set_ylabel("model")
    ax.set_title(f"Gap by category ({what})")
    fig.colorbar(image, ax=ax, label=f"gap ({what}); red: understands better than it draws")
    return _save(fig, folder, "gap_heatmap")


def _absmax(values: list[list[float]]) -> float:
    finite = [abs(v) for row in values for v in row if v == v]
    return max(finite) if finite else 1.0


def checkpoint_curves(
    steps: Sequence[int],
    und: Sequence[float | None],
    gen: Sequence[float | None],
    gaps: Sequence[tuple[float | None, float | None, float | None]],
    lag: tuple[float, float, float] | None,
    folder: Path,
) -> str:
    """Accuracy per direction over training (left), the identified gap with its interval (right)."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    as_pct = [[None if v is None else 100 * v for v in series] for series in (und, gen)]
    left.plot(steps, as_pct[0], marker="o", color="#1565c0", label="understanding")
    left.plot(steps, as_pct[1], marker="s", color="#ef6c00", label="generation")
    if lag is not None:
        s_u, s_g, frac = lag
        left.axvline(
            s_u, color="#1565c0", linestyle=":", linewidth=1, label=f"und reaches {frac:.0%} of final"
        )
        left.axvline(
            s_g, color="#ef6c00", linestyle=":", linewidth=1, label=f"gen reaches {frac:.0%} of final"
        )
    left.set_xlabel("training step")
    left.set_ylabel("accuracy (%)")
    left.set_ylim(0, 100)
    left.set_title("Both directions over training")
    left.legend(fontsize=7, loc="lower right")
    _gap_panel(right, [("gap (und - gen) and interval", "#6a1b9a", steps, gaps)], size=3)
    return _save(fig, folder, "curve")


def _gap_panel(
    ax: Any,
    series: Sequence[
        tuple[str, str, Sequence[int], Sequence[tuple[float | None, float | None, float | None]]]
    ],
    size: int,
) -> None:
    """The identified gap per checkpoint with its interval, one series per model, and the zero line."""
    for label, colour, steps, gaps in series:
        pts = [(s, g, lo, hi) for s, (g, lo, hi) in zip(steps, gaps, strict=True) if g is not None]
        if pts:
            yerr = [[g - (lo if lo is not None else g) for _, g, lo, _ in pts],
                    [(hi if hi is not None else g) - g for _, g, _, hi in pts]]  # fmt: skip
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=yerr, marker="o", markersize=size + 2,
                        capsize=size, color=colour, label=label)  # fmt: skip
    ax.axhline(0, color="#777", linestyle="--", linewidth=1, label="no gap")
    ax.set_xlabel("training step")
    ax.set_ylabel("identified gap und - gen (logits)")
    ax.set_title("The gap at each checkpoint")
    ax.legend(fontsize=7, loc="upper right")


def knowledge_bars(
    arms: Sequence[str],
    probes: Sequence[str],
    cells: dict[tuple[str, str, str], tuple[float | None, float | None, float | None, float | None]],
    title: str,
    folder: Path,
) -> str:
    """Accuracy per arm in both directions, one panel per probe; error bars: the change's interval.

    ``cells`` maps (arm, probe, direction) to (accuracy, delta low, delta high, delta); an arm's bar
    carries the interval of its change from the baseline, shifted onto its accuracy.
    """
    plt = _plt()
    fig, axes = plt.subplots(
        1, len(probes), figsize=(3.6 * len(probes) + 0.6, 3.4), sharey=True, squeeze=False
    )
    colours = {"und": "#1565c0", "gen": "#ef6c00"}
    for ax, probe in zip(axes[0], probes, strict=True):
        for k, direction in enumerate(("und", "gen")):
            xs: list[float] = []
            ys: list[float] = []
            err: list[list[float]] = [[], []]
            for i, arm in enumerate(arms):
                acc, low, high, delta = cells.get((arm, probe, direction), (None, None, None, None))
                xs.append(i + (k - 0.5) * 0.38)
                ys.append(100 * (acc or 0.0))
                ok = None not in (acc, low, high, delta)
                err[0].append(100 * (delta - low) if ok else 0.0)  # type: ignore[operator]
                err[1].append(100 * (high - delta) if ok else 0.0)  # type: ignore[operator]
            label = "understanding" if direction == "und" else "generation"
            ax.bar(xs, ys, 0.38, yerr=err, capsize=3, color=colours[direction], label=f"{label} evaluated")
        ax.set_xticks(range(len(arms)))
        ax.set_xticklabels(["baseline" if a == "baseline" else f"train {a}" for a in arms])
        ax.set_title(probe)
        ax.set_xlabel("arm (direction trained)")
        ax.set_ylim(0, 100)
    axes[0][0].set_ylabel("accuracy (%)")
    axes[0][-1].legend(loc="upper right", fontsize=8)
    fig.suptitle(title, y=1.02)  # above the panel titles
    return _save(fig, folder, "knowledge")


_VARIANT_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f")


def mechanism_curves(curves: dict[str, list[dict[str, Any]]], folder: Path) -> str:
    """Per architecture variant: both directions over training (left), the gap per checkpoint (right)."""
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10.5, 3.8))
    gaps: list[tuple[str, str, list[int], list[tuple[float | None, float | None, float | None]]]] = []
    for (name, points), colour in zip(curves.items(), _VARIANT_COLOURS, strict=False):
        steps = [p["step"] for p in points]
        for key, style in (("und", "-"), ("gen", "--")):
            ys = [None if p[key] is None else 100 * p[key] for p in points]
            left.plot(steps, ys, style, marker="o", markersize=3, color=colour, label=f"{name} {key}")
        gaps.append((name, colour, steps, [(p["gap"], p["gap_low"], p["gap_high"]) for p in points]))
    left.set_xlabel("training step")
    left.set_ylabel("accuracy (%)")
    left.set_ylim(0, 100)
    left.set_title("Both directions over training (solid: und, dashed: gen)")
    left.legend(fontsize=7, loc="lower right", ncol=2)
    _gap_panel(right, gaps, size=2)
    return _save(fig, folder, "mechanisms-curves")


def mechanism_transfer(
    variants: Sequence[str], estimates: dict[str, list[dict[str, Any]]], folder: Path
) -> str:
    """Transfer to the untrained direction per variant (x100), with intervals, one bar group per measure."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    measures = list(estimates)
    width = 0.8 / max(1, len(variants))
    for k, (name, colour) in enumerate(zip(variants, _VARIANT_COLOURS, strict=False)):
        xs: list[float] = []
        ys: list[float] = []
        err: list[list[float]] = [[], []]
        for i, m in enumerate(measures):
            e = estimates[m][k]
            v = e["value"]
            xs.append(i + (k - (len(variants) - 1) / 2) * width)
            ys.append(100 * v if v is not None else 0.0)
            ok = None not in (v, e["low"], e["high"])
            err[0].append(100 * (v - e["low"]) if ok else 0.0)
            err[1].append(100 * (e["high"] - v) if ok else 0.0)
        ax.bar(xs, ys, width, yerr=err, capsize=3, color=colour, label=name)
    ax.axhline(0, color="#777", linewidth=1)
    ax.set_xticks(range(len(measures)))
    ax.set_xticklabels([m.replace("_to_", " -> ").replace("_", " ") for m in measures])
    ax.set_ylabel("change in the untrained direction (points)")
    ax.set_title("Does knowledge taught through one direction reach the other?")
    ax.legend(fontsize=8)
    return _save(fig, folder, "mechanisms-transfer")


def mechanism_layers(layers: dict[str, list[dict[str, Any]]], chance: float, folder: Path) -> str:
    """Per variant and layer: the probe read across paths (solid) and within understanding (dotted)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for (name, rows), colour in zip(layers.items(), _VARIANT_COLOURS, strict=False):
        xs = [r["layer"] for r in rows]
        ax.plot(xs, [r["transfer"] for r in rows], marker="o", color=colour, label=f"{name} und -> gen")
        ax.fill_between(xs, [r["transfer_low"] for r in rows], [r["transfer_high"] for r in rows],
                        color=colour, alpha=0.15)  # fmt: skip
        ax.plot(xs, [r["within"] for r in rows], ":", color=colour, label=f"{name} und -> und")
    ax.axhline(chance, color="#777", linestyle="--", linewidth=1, label="chance")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("layer (0: embeddings; last: final norm)")
    ax.set_ylabel("probe accuracy")
    ax.set_title("Is an entity held the same way on both paths?")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, folder, "mechanisms-layers")
