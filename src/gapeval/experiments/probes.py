"""Where the two directions' training signals land: the parameter-overlap probe.

The paper explains the gap by *disjoint parameter spaces*: fine-tuning one direction updates parameters
the other does not read. This probe measures it on a model. For the same facts asked both ways, it takes
the gradient of the understanding loss and of the generation loss (the knowledge runners' own loss
functions: :func:`gapeval.experiments.runners.loss_functions`) and compares them per module and layer:

- the cosine of the two gradients (None where either is zero: a module one direction does not reach);
- the overlap of the top-k % of parameters by gradient magnitude (over the whole model, then counted per
  module): ``|top_und & top_gen| / |top_und | top_gen|`` (Jaccard), and each direction's share of its
  top-k in the module.

For the arms of a knowledge experiment (``--arms DIR``), the relative weight change per module,
``||W_arm - W_base|| / ||W_base||``: where training an understanding arm actually wrote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gapeval.errors import GapevalError
from gapeval.report.tables import Column, Row, Table

_LAYER = re.compile(r"\.(\d+)\.")
_TAIL = re.compile(r"(\.\d+)+$")


def group_of(name: str) -> str:
    """A parameter's module: its name without ``.weight``/``.bias`` and trailing indices (``mlp.0``)."""
    stem = name.rsplit(".", 1)[0] if name.endswith((".weight", ".bias")) else name
    return _TAIL.sub("", stem)


def layer_of(name: str) -> int | None:
    """The first layer index in a parameter's name, if any."""
    found = _LAYER.search(name)
    return int(found.group(1)) if found else None


class GroupOverlap(BaseModel):
    """The two directions' gradients in one module.

    Attributes:
        group: The module (``blocks.2.qkv``; ``Overall`` for the whole model).
        layer: Its layer index, if it has one.
        side: ``und``, ``gen`` or ``shared`` (which direction's side the architecture gives it).
        params: Parameters in it.
        cosine: Cosine of the understanding and the generation gradient (None where either is zero).
        overlap: Jaccard overlap of the two directions' top-k parameters in it (None where neither has any).
        und_share, gen_share: The share of each direction's top-k parameters that lie in it.

    """

    group: str
    layer: int | None
    side: str
    params: int
    cosine: float | None
    overlap: float | None
    und_share: float
    gen_share: float


class Overlap(BaseModel):
    """The parameter-overlap probe of one model.

    Attributes:
        model: The model spec.
        examples: Examples per direction behind each gradient.
        topk: The share of parameters (by gradient magnitude) taken as a direction's top.
        overall: The whole model.
        groups: Per module, in the model's order.

    """

    model: str
    examples: int
    topk: float
    overall: GroupOverlap
    groups: list[GroupOverlap]

    def table(self) -> Table:
        """Per module, and the whole model first."""
        columns = [
            Column(key="group", title="module", kind="text"),
            Column(key="side", title="side", kind="text"),
            Column(key="params", title="params", kind="int"),
            Column(key="cosine", title="cosine", digits=3, signed=True, help="of the two gradients"),
            Column(key="overlap", title=f"top {self.topk:.3g}% overlap", digits=3,
                   help="Jaccard overlap of the directions' top parameters by gradient magnitude"),
            Column(key="und_share", title="und top share", digits=3, help="share of und's top here"),
            Column(key="gen_share", title="gen top share", digits=3, help="share of gen's top here"),
        ]  # fmt: skip
        rows = [Row(values=self.overall.model_dump(), section=True)]
        rows += [Row(values=g.model_dump()) for g in self.groups]
        return Table(
            name="overlap",
            title=f"Where the two directions' gradients land: {self.model}",
            columns=columns,
            rows=rows,
            caption=f"{self.examples} examples per direction, the same facts asked both ways. Cosine: "
            "– where one direction's gradient is zero in the module (it does not reach it).",
        )


def _flat(grads: Mapping[str, Any]) -> Any:
    import torch

    return torch.cat([g.reshape(-1) for g in grads.values()])


def _top(values: Any, share: float) -> Any:
    """Mask of the top ``share`` of ``values`` by magnitude (zeros never count)."""
    import torch

    mag = values.abs()
    k = max(1, math.ceil(share * mag.numel()))
    threshold = torch.topk(mag, k).values[-1]
    return (mag >= threshold) & (mag > 0)


def compare(
    und: Mapping[str, Any], gen: Mapping[str, Any], topk: float, side_of: Callable[[str], str] | None = None
) -> tuple[GroupOverlap, list[GroupOverlap]]:
    """Compare two gradients (parameter name -> tensor, the same names in the same order).

    Args:
        und: The understanding loss's gradient.
        gen: The generation loss's gradient.
        topk: The top share (e.g. 0.01 for 1 %) of parameters by magnitude.
        side_of: The architecture's side of a parameter name (default: every one ``shared``).

    """
    import torch

    if list(und) != list(gen):
        raise ValueError("the two gradients cover different parameters")
    side = side_of or (lambda _: "shared")
    u, g = _flat(und), _flat(gen)
    tu, tg = _top(u, topk), _top(g, topk)
    n_u, n_g = max(1, int(tu.sum())), max(1, int(tg.sum()))

    def row(group: str, layer: int | None, kind: str, sl: Any) -> GroupOverlap:
        a, b, ta, tb = u[sl].double(), g[sl].double(), tu[sl], tg[sl]
        na, nb = float(torch.linalg.vector_norm(a)), float(torch.linalg.vector_norm(b))
        cos = float(torch.dot(a, b)) / (na * nb) if na > 0 and nb > 0 else None
        union = int((ta | tb).sum())
        return GroupOverlap(group=group, layer=layer, side=kind, params=int(a.numel()), cosine=cos,
                            overlap=int((ta & tb).sum()) / union if union else None,
                            und_share=int(ta.sum()) / n_u, gen_share=int(tb.sum()) / n_g)  # fmt: skip

    spans: dict[str, list[tuple[int, int, str]]] = {}
    at = 0
    for name, grad in und.items():
        spans.setdefault(group_of(name), []).append((at, at + grad.numel(), name))
        at += grad.numel()
    groups = []
    for group, parts in spans.items():
        index = torch.cat([torch.arange(s, e) for s, e, _ in parts])
        sides = {side(n) for _, _, n in parts}
        groups.append(row(group, layer_of(parts[0][2]), sides.pop() if len(sides) == 1 else "mixed", index))
    return row("Overall", None, "all", slice(None)), groups


def gradient(model: Any, loss: Callable[[], Any]) -> dict[str, Any]:
    """The gradient of ``loss()`` for every trainable parameter (name -> a detached copy)."""
    model.zero_grad(set_to_none=True)
    loss().backward()
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out[name] = (p.grad if p.grad is not None else p.new_zeros(p.shape)).detach().float().clone()
    model.zero_grad(set_to_none=True)
    return out


def probe_overlap(
    model_spec: str,
    und_examples: Sequence[Any],
    gen_examples: Sequence[Any],
    *,
    words: Sequence[str] = (),
    topk: float = 0.01,
    options: Mapping[str, str] | None = None,
) -> Overlap:
    """The parameter-overlap probe of a model on examples of both directions (see the module docstring).

    Args:
        model_spec: ``toy``, ``toy:CHECKPOINT`` or ``janus:PATH``.
        und_examples: Understanding examples (:class:`~gapeval.experiments.knowledge_data.Example`).
        gen_examples: Generation examples of the same facts.
        words: New names the examples use (the built-in model gets tokens for them, as a knowledge
            experiment's baseline does).
        topk: The top share of parameters by gradient magnitude.
        options: Adapter options (``device``, ``dtype``... for janus).

    """
    from gapeval.experiments.runners import loss_functions

    if not 0 < topk <= 1:
        raise GapevalError("the top share is a percentage in (0, 100]", field="--topk")
    model, und_loss, gen_loss = loss_functions(model_spec, words, dict(options or {}))
    und = gradient(model, lambda: und_loss(list(und_examples)))
    gen = gradient(model, lambda: gen_loss(list(gen_examples)))
    side_of = getattr(model, "side_of", None)
    overall, groups = compare(und, gen, topk, side_of)
    return Overlap(
        model=model_spec, examples=len(und_examples), topk=100 * topk, overall=overall, groups=groups
    )


class ArmChange(BaseModel):
    """How far one module's weights moved in each arm of a knowledge experiment.

    Attributes:
        group: The module.
        side: Its architecture side.
        change: Per arm (``arm-sSEED``), ``||W_arm - W_base|| / ||W_base||``.

    """

    group: str
    side: str
    change: dict[str, float]


class WeightChanges(BaseModel):
    """Where each arm of a knowledge experiment wrote, per module.

    Attributes:
        base: The checkpoint the arms started from.
        arms: The arms, in order.
        groups: Per module.

    """

    base: str
    arms: list[str]
    groups: list[ArmChange]

    def table(self) -> Table:
        """One row per module, one column per arm."""
        columns = [
            Column(key="group", title="module", kind="text"),
            Column(key="side", title="side", kind="text"),
        ]
        columns += [Column(key=a, title=a, digits=4, help="relative weight change") for a in self.arms]
        rows = [Row(values={"group": g.group, "side": g.side, **g.change}) for g in self.groups]
        return Table(name="weight_change", title="Where each arm wrote: relative weight change per module",
                     columns=columns, rows=rows,
                     caption=f"||W_arm - W_base|| / ||W_base|| against {self.base}.")  # fmt: skip


def weight_changes(folder: str | Path) -> WeightChanges:
    """The relative weight change per module of every trained arm in a knowledge experiment's folder.

    The built-in model's arms are its checkpoints (``ARM-sSEED.pt`` beside ``baseline.pt``, or the
    shipped weights when the experiment taught no new names).

    Raises:
        GapevalError: The folder holds no trained arm of the built-in model.

    """
    import torch

    from gapeval.models.toy import shipped_checkpoint
    from gapeval.toy.train import load_checkpoint

    root = Path(folder)
    arms = sorted(p for p in root.rglob("*-s*.pt") if p.is_file()) if root.is_dir() else []
    if not arms:
        raise GapevalError("holds no trained arm of the built-in model (ARM-sSEED.pt)", file=root,
                           field="--arms")  # fmt: skip
    base_path = arms[0].parent / "baseline.pt"
    base_path = base_path if base_path.is_file() else shipped_checkpoint()
    base, *_ = load_checkpoint(base_path)
    base_state = dict(base.named_parameters())
    per: dict[str, dict[str, float]] = {}
    names = []
    for path in arms:
        arm, *_ = load_checkpoint(path)
        names.append(path.stem)
        num: dict[str, float] = {}
        den: dict[str, float] = {}
        for name, p in arm.named_parameters():
            if name not in base_state or base_state[name].shape != p.shape:
                continue
            g = group_of(name)
            num[g] = num.get(g, 0.0) + float(torch.sum((p - base_state[name]) ** 2))
            den[g] = den.get(g, 0.0) + float(torch.sum(base_state[name] ** 2))
        for g in num:
            per.setdefault(g, {})[path.stem] = math.sqrt(num[g]) / math.sqrt(den[g]) if den[g] else 0.0
    return WeightChanges(
        base=str(base_path),
        arms=names,
        groups=[ArmChange(group=g, side=base.side_of(g + ".weight"), change=c) for g, c in per.items()],
    )
