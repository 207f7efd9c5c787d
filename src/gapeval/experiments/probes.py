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
    per, names = _changes(arms, base_state)
    return WeightChanges(
        base=str(base_path),
        arms=names,
        groups=[ArmChange(group=g, side=base.side_of(g + ".weight"), change=c) for g, c in per.items()],
    )


def _changes(
    arms: list[Path], base_state: Mapping[str, Any]
) -> tuple[dict[str, dict[str, float]], list[str]]:
    import torch

    from gapeval.toy.train import load_checkpoint

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
            new, old = p.detach(), base_state[name].detach()  # weights compared, nothing trained
            num[g] = num.get(g, 0.0) + float(torch.sum((new - old) ** 2))
            den[g] = den.get(g, 0.0) + float(torch.sum(old**2))
        for g in num:
            per.setdefault(g, {})[path.stem] = math.sqrt(num[g]) / math.sqrt(den[g]) if den[g] else 0.0
    return per, names


# -- representations ---------------------------------------------------------------------------------
class LayerReading(BaseModel):
    """How far one layer's states of the two paths hold an entity the same way.

    Attributes:
        layer: 0 for the embeddings, ``i`` after block ``i``, the last for the final normalised states.
        within: Accuracy of a linear probe trained on half the understanding states and read on the
            other half (how well the layer holds the entity at all), with its Wilson interval.
        within_gen: The same on the generation path (transfer can reach only what both paths hold).
        transfer: Accuracy of the probe trained on all understanding states, read on the generation
            path's states of the same entities (a shared representation reads well; disjoint, at chance).
        cka: Linear CKA between the two paths' states of paired examples (same entity, pair by pair).

    """

    layer: int
    within: float
    within_low: float
    within_high: float
    within_gen: float
    transfer: float
    transfer_low: float
    transfer_high: float
    cka: float


class Representations(BaseModel):
    """The representation probe of one model.

    Attributes:
        model: The model spec.
        entities: The entities read.
        per_entity: Examples per entity and direction.
        chance: The accuracy of guessing (one over the entities).
        at: Where each request's state is read: ``last`` (its last token: ``<ans>``, the output
            ``<img>``) or ``entity`` (the entity's own name token).
        layers: Per layer.

    """

    model: str
    entities: list[str]
    per_entity: int
    chance: float
    at: str = "last"
    layers: list[LayerReading]

    def table(self) -> Table:
        """One row per layer."""
        columns = [
            Column(key="layer", title="layer", kind="int"),
            Column(key="within", title="und -> und", digits=3, help="held-out understanding states"),
            Column(key="within_ci", title="95% CI", kind="interval", digits=2),
            Column(key="within_gen", title="gen -> gen", digits=3, help="held-out generation states"),
            Column(key="transfer", title="und -> gen", digits=3, help="read on the generation path"),
            Column(key="transfer_ci", title="95% CI", kind="interval", digits=2),
            Column(key="cka", title="CKA", digits=3, help="linear CKA of the paired states"),
        ]
        rows = [
            Row(
                values={
                    **r.model_dump(),
                    "within_ci": (r.within_low, r.within_high),
                    "transfer_ci": (r.transfer_low, r.transfer_high),
                }
            )
            for r in self.layers
        ]
        return Table(
            name="representations",
            title=f"Is an entity held the same way on both paths? {self.model}",
            columns=columns,
            rows=rows,
            caption=f"{len(self.entities)} entities x {self.per_entity} examples per direction; chance "
            f"{self.chance:.3f}. A linear probe (ridge, one-vs-all) reads the entity from the state at "
            + (
                "the last token of each request (<ans>; the output <img>)"
                if self.at == "last"
                else "the entity's name token"
            )
            + ". Layer 0: embeddings; last: final norm.",
        )


def ridge_fit(x: Any, y: Any, n_classes: int, lam: float = 1.0) -> tuple[Any, Any, Any]:
    """A ridge one-vs-all classifier on standardised features: (weights, mean, scale)."""
    import numpy as np

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    z = np.hstack([z, np.ones((len(z), 1))])
    target = np.eye(n_classes)[y]
    w = np.linalg.solve(z.T @ z + lam * np.eye(z.shape[1]), z.T @ target)
    return w, mean, scale


def ridge_predict(model: tuple[Any, Any, Any], x: Any) -> Any:
    """Class predictions of :func:`ridge_fit`'s classifier."""
    import numpy as np

    w, mean, scale = model
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    return np.argmax(z @ w, axis=1)


def linear_cka(x: Any, y: Any) -> float:
    """Linear CKA of two paired sets of states (rows paired)."""
    import numpy as np

    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = float(np.linalg.norm(y.T @ x) ** 2)
    norm = float(np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))
    return cross / norm if norm > 0 else 0.0


def read_across(und: Any, gen: Any, labels: Any, n_classes: int, seed: int = 0) -> list[LayerReading]:
    """Per layer: the entity read within the understanding path, across to the generation path, and CKA.

    Args:
        und: (L, N, D) understanding states per layer.
        gen: (L, N, D) generation states, row ``i`` the same entity as ``und``'s row ``i``.
        labels: (N,) entity index of each row.
        n_classes: Entities.
        seed: Which half of the understanding states the within-path probe is trained on.

    """
    import numpy as np

    from gapeval.scoring.judge_error import wilson

    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2 :]
    out = []
    for layer in range(und.shape[0]):
        x, g = np.asarray(und[layer], dtype=np.float64), np.asarray(gen[layer], dtype=np.float64)
        inside = int(np.sum(ridge_predict(ridge_fit(x[half_a], labels[half_a], n_classes), x[half_b])
                            == labels[half_b]))  # fmt: skip
        inside_gen = int(np.sum(ridge_predict(ridge_fit(g[half_a], labels[half_a], n_classes), g[half_b])
                                == labels[half_b]))  # fmt: skip
        across = int(np.sum(ridge_predict(ridge_fit(x, labels, n_classes), g) == labels))
        w, t = wilson(inside, len(half_b)), wilson(across, len(labels))
        out.append(LayerReading(layer=layer, within=w.value or 0.0, within_low=w.low or 0.0,
                                within_gen=inside_gen / len(half_b),
                                within_high=w.high or 0.0, transfer=t.value or 0.0, transfer_low=t.low or 0.0,
                                transfer_high=t.high or 0.0, cka=linear_cka(x, g)))  # fmt: skip
    return out


def probe_representations(
    model_spec: str, entities: Mapping[str, Any], *, per_entity: int = 16, seed: int = 0, at: str = "last"
) -> Representations:
    """The representation probe of the built-in model (any architecture variant).

    Args:
        model_spec: ``toy`` or ``toy:CHECKPOINT``.
        entities: Entity name -> its look (a world object), e.g. the world's invented entities or a
            knowledge spec's facts.
        per_entity: Examples per entity and direction (random cells; the understanding image drawn).
        seed: The examples' seed.
        at: ``last`` (each request's last token) or ``entity`` (the entity's name token, where a model
            that shares its embeddings starts from the same state on both paths).

    """
    import numpy as np
    import torch

    from gapeval.experiments.runners import load_toy
    from gapeval.toy.data import entity_requests
    from gapeval.toy.model import states_at

    family, _, arg = model_spec.partition(":")
    if family != "toy":
        raise GapevalError("the representation probe reads the built-in model (toy, toy:CHECKPOINT)",
                           field="model")  # fmt: skip
    if at not in ("last", "entity"):
        raise GapevalError(f"read at last or entity, not {at!r}", field="--at")
    if per_entity < 2 or len(entities) < 2:
        raise GapevalError("at least two entities and two examples of each", field="--per-entity")
    model, vocab, tok = load_toy(arg, list(entities))
    model.eval()
    rng = np.random.default_rng(seed)
    names = list(entities)
    und_ids, gen_ids, labels = entity_requests(vocab, tok, rng, entities, per_entity)
    name_ids = [vocab.encode_text(n)[0] for n in names]

    def last_states(prefixes: list[list[int]]) -> Any:
        where = [-1 if at == "last" else p.index(name_ids[c]) for p, c in zip(prefixes, labels, strict=True)]
        with torch.no_grad():
            return np.stack([s.numpy() for s in states_at(model, prefixes, where)])  # (L, N, D)

    layers = read_across(last_states(und_ids), last_states(gen_ids), np.array(labels), len(names), seed)
    return Representations(model=model_spec, entities=names, per_entity=per_entity, chance=1 / len(names),
                           at=at, layers=layers)  # fmt: skip


def facts_overlap(
    model: str,
    facts: str | Path | None = None,
    *,
    examples: int = 32,
    topk: float = 1.0,
    seed: int = 0,
    options: Mapping[str, str] | None = None,
) -> Overlap:
    """:func:`probe_overlap` on a knowledge spec's facts, asked both ways (``topk`` in percent).

    Args:
        model: ``toy``, ``toy:CHECKPOINT`` or ``janus:PATH``.
        facts: A knowledge spec (default: the built-in injection spec).
        examples: Examples per direction.
        topk: The top percentage of parameters by gradient magnitude.
        seed: The examples' seed.
        options: Adapter options.

    """
    from gapeval.experiments.knowledge_data import Sampler
    from gapeval.experiments.knowledge_spec import KnowledgeSpec, builtin_spec
    from gapeval.specfile import load_spec_file

    if examples < 1:
        raise GapevalError("at least one example per direction", field="--examples")
    file = Path(facts) if facts is not None else builtin_spec("inject")
    spec = load_spec_file(file, KnowledgeSpec)
    sampler = Sampler(spec, "both", seed, file.parent)  # the facts, asked both ways
    und, gen = sampler.knowledge("und", examples), sampler.knowledge("gen", examples)
    words = [f.name for f in spec.facts] if spec.experiment == "inject" else []
    return probe_overlap(model, und, gen, words=words, topk=topk / 100, options=options)


def spec_entities(facts: str | Path | None = None) -> dict[str, Any]:
    """The entities (name -> look) of a knowledge spec's world; default: the world's invented entities."""
    from gapeval.experiments.knowledge_spec import KnowledgeSpec
    from gapeval.specfile import load_spec_file
    from gapeval.suites.shapes import tasks

    if facts is not None:
        return dict(load_spec_file(Path(facts), KnowledgeSpec).looks())
    return {e: tasks.LOOKS[e] for e in tasks.ENTITIES}
