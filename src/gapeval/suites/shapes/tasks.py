"""Bidirectional items of the shapes world, in all four GapEval categories.

Every item is one question asked both ways: as understanding (image + text -> text) and as generation
(text -> image, or image + text -> edited image). Each kind has a *combination key* (what the question
is about: colour, shape, position, count, entity...); a fixed hash of the key puts every combination in
the train or the test split, so test questions are new combinations of known parts rather than repeats.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gapeval.items import Category
from gapeval.suites.shapes.world import COLOURS, GRID, POSITIONS, SHAPES, SIDES, Obj, Scene, row_col

COLOUR_NAMES = tuple(COLOURS)
ENTITIES = (
    "zorp",
    "blick",
    "fendle",
    "glim",
    "trazz",
    "quib",
    "morv",
    "snell",
    "dax",
    "wug",
    "plon",
    "krel",
    "vosh",
    "tam",
    "jurn",
    "nix",
)
PEOPLE = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "ken",
    "lena",
    "mallory",
    "nina",
    "oscar",
    "peggy",
)
_ALL_OBJECTS = [(c, s) for c in COLOUR_NAMES for s in SHAPES]
#: Each invented entity has one definite look; each person has one entity as a pet.
LOOKS: dict[str, Obj] = {e: _ALL_OBJECTS[(7 * i + 3) % len(_ALL_OBJECTS)] for i, e in enumerate(ENTITIES)}
PETS: dict[str, str] = {p: ENTITIES[(5 * i + 2) % len(ENTITIES)] for i, p in enumerate(PEOPLE)}
RELATIONS = ("left of", "right of", "above", "below")
TEST_SHARE = 5  # one combination in five is held out for test


@dataclass
class Spec:
    """One generated item before it is written as an :class:`~gapeval.items.Item`."""

    kind: str
    category: Category
    key: tuple[Any, ...]
    und_prompt: str
    und_scene: Scene | None
    answer: str
    answer_type: str
    answer_value: Any
    gen_prompt: str
    gen_input: Scene | None
    gen_check: dict[str, Any]
    gen_target: Scene
    choice: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def plural(shape: str, n: int) -> str:
    """Shape name in the number ``n`` calls for."""
    return shape if n == 1 else shape + "s"


def obj_words(obj: Obj, n: int = 1) -> str:
    """'red circle' / 'red circles'."""
    return f"{obj[0]} {plural(obj[1], n)}"


def split_of(kind: str, key: tuple[Any, ...]) -> str:
    """'test' for one combination in ``TEST_SHARE``, else 'train' (stable across machines)."""
    digest = hashlib.sha256(repr((kind, key)).encode()).digest()
    return "test" if digest[0] % TEST_SHARE == 0 else "train"


def _place(rng: np.random.Generator, objs: list[Obj], fixed: dict[int, Obj] | None = None) -> Scene:
    scene: list[Obj | None] = [None] * (GRID * GRID)
    for cell, obj in (fixed or {}).items():
        scene[cell] = obj
    free = [i for i in range(GRID * GRID) if scene[i] is None]
    cells = rng.choice(free, size=len(objs), replace=False)
    for c, o in zip(cells, objs, strict=True):
        scene[int(c)] = o
    return tuple(scene)


def _other_objects(rng: np.random.Generator, n: int, avoid: set[Obj]) -> list[Obj]:
    pool = [o for o in _ALL_OBJECTS if o not in avoid]
    return [pool[int(i)] for i in rng.integers(len(pool), size=n)]


def _among_others(rng: np.random.Generator, obj: Obj, cell: int) -> Scene:
    """``obj`` in ``cell`` with one to three other objects elsewhere."""
    return _place(rng, _other_objects(rng, int(rng.integers(1, 4)), {obj}), {cell: obj})


def _obj(rng: np.random.Generator) -> Obj:
    return _ALL_OBJECTS[int(rng.integers(len(_ALL_OBJECTS)))]


def _at_check(obj: Obj, cell: int) -> dict[str, Any]:
    return {"type": "at", "obj": list(obj), "cell": cell}


# -- Numerical Perception --------------------------------------------------------------------------------
def k_count(rng: np.random.Generator) -> Spec:
    """Counting (text-to-image): how many X / draw n X."""
    target, n = _obj(rng), int(rng.integers(1, 6))
    key = (target, n)
    distract = _other_objects(rng, int(rng.integers(0, 3)), {target})
    return Spec(
        "count",
        Category.NUMERICAL_PERCEPTION,
        key,
        f"how many {obj_words(target, 2)} are there",
        _place(rng, [target] * n + distract),
        str(n),
        "number",
        n,
        f"draw {n} {obj_words(target, n)}",
        None,
        {"type": "count", "targets": [[*target, n]]},
        _place(rng, [target] * n),
    )


def k_countswap(rng: np.random.Generator) -> Spec:
    """Count-swap (edit), the real benchmark's pattern: count two kinds / swap their numbers."""
    a_obj = _obj(rng)
    b_obj = _other_objects(rng, 1, {a_obj})[0]
    a, b = (int(x) for x in rng.choice(np.arange(1, 5), size=2, replace=False))
    key = (a_obj, b_obj, a, b)
    scene = _place(rng, [a_obj] * a + [b_obj] * b)
    # The edit keeps what it can and changes as few cells as it must.
    cells = list(scene)
    a_cells = [i for i, o in enumerate(cells) if o == a_obj]
    b_cells = [i for i, o in enumerate(cells) if o == b_obj]
    if a > b:
        for i in a_cells[: a - b]:
            cells[i] = b_obj
    else:
        for i in b_cells[: b - a]:
            cells[i] = a_obj
    return Spec(
        "countswap",
        Category.NUMERICAL_PERCEPTION,
        key,
        f"how many {obj_words(a_obj, 2)} and {obj_words(b_obj, 2)} are there",
        scene,
        f"{a} {obj_words(a_obj, a)} and {b} {obj_words(b_obj, b)}",
        "counts",
        {obj_words(a_obj): a, obj_words(b_obj): b},
        f"swap the numbers of {obj_words(a_obj, 2)} and {obj_words(b_obj, 2)}",
        scene,
        {"type": "count", "targets": [[*a_obj, b], [*b_obj, a]]},
        tuple(cells),
    )


# -- Instruction Following -------------------------------------------------------------------------------
def k_position(rng: np.random.Generator) -> Spec:
    """Attributes at positions (text-to-image): what is in P / draw X in P."""
    obj, cell = _obj(rng), int(rng.integers(GRID * GRID))
    key = (obj, cell)
    scene = _among_others(rng, obj, cell)
    return Spec(
        "position",
        Category.INSTRUCTION_FOLLOWING,
        key,
        f"what is in the {POSITIONS[cell]}",
        scene,
        obj_words(obj),
        "object",
        list(obj),
        f"draw a {obj_words(obj)} in the {POSITIONS[cell]}",
        None,
        _at_check(obj, cell),
        _place(rng, [], {cell: obj}),
    )


def holds(rel: str, i: int, j: int) -> bool:
    """Whether the relation ``rel`` holds between cells ``i`` and ``j``."""
    (ri, ci), (rj, cj) = row_col(i), row_col(j)
    return {"left of": ci < cj, "right of": ci > cj, "above": ri < rj, "below": ri > rj}[rel]


def k_relation(rng: np.random.Generator) -> Spec:
    """Spatial relations (text-to-image): is A left of B / draw A left of B."""
    a = _obj(rng)
    b = _other_objects(rng, 1, {a})[0]
    rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
    key = (a, rel, b)
    truth = bool(rng.integers(2))
    while True:
        i, j = (int(x) for x in rng.choice(GRID * GRID, size=2, replace=False))
        if holds(rel, i, j) == truth:
            break
    while True:
        ti, tj = (int(x) for x in rng.choice(GRID * GRID, size=2, replace=False))
        if holds(rel, ti, tj):
            break
    return Spec(
        "relation",
        Category.INSTRUCTION_FOLLOWING,
        key,
        f"is the {obj_words(a)} {rel} the {obj_words(b)}",
        _place(rng, [], {i: a, j: b}),
        "yes" if truth else "no",
        "yesno",
        truth,
        f"draw a {obj_words(a)} {rel} a {obj_words(b)}",
        None,
        {"type": "relation", "a": list(a), "rel": rel, "b": list(b)},
        _place(rng, [], {ti: a, tj: b}),
    )


def k_rule(rng: np.random.Generator) -> Spec:
    """A rule applied to the given image (edit): recolour, remove or reshape every X."""
    rule = ("recolour", "remove", "reshape")[int(rng.integers(3))]
    scene = _place(rng, [_obj(rng) for _ in range(int(rng.integers(3, 7)))])
    present = [o for o in scene if o is not None]
    if rule == "recolour":
        c1 = present[int(rng.integers(len(present)))][0]
        c2 = COLOUR_NAMES[int(rng.choice([i for i, c in enumerate(COLOUR_NAMES) if c != c1]))]
        key: tuple[Any, ...] = (rule, c1, c2)
        out = tuple((c2, o[1]) if o and o[0] == c1 else o for o in scene)
        n = sum(1 for o in out if o and o[0] == c2)
        und = f"if every {c1} shape became {c2} how many {c2} shapes would there be"
        gen = f"make every {c1} shape {c2}"
    elif rule == "remove":
        s = present[int(rng.integers(len(present)))][1]
        key = (rule, s)
        out = tuple(None if o and o[1] == s else o for o in scene)
        n = sum(1 for o in out if o)
        und = f"if every {s} were removed how many shapes would be left"
        gen = f"remove every {s}"
    else:
        s1 = present[int(rng.integers(len(present)))][1]
        s2 = SHAPES[int(rng.choice([i for i, s in enumerate(SHAPES) if s != s1]))]
        key = (rule, s1, s2)
        out = tuple((o[0], s2) if o and o[1] == s1 else o for o in scene)
        n = sum(1 for o in out if o and o[1] == s2)
        und = f"if every {s1} became a {s2} how many {s2}s would there be"
        gen = f"turn every {s1} into a {s2}"
    return Spec(
        "rule",
        Category.INSTRUCTION_FOLLOWING,
        key,
        und,
        scene,
        str(n),
        "number",
        n,
        gen,
        scene,
        {"type": "scene", "scene": [list(o) if o else None for o in out]},
        out,
    )


# -- World Knowledge -------------------------------------------------------------------------------------
def _scene_with(rng: np.random.Generator, obj: Obj, cell: int, distractor: Obj | None) -> Scene:
    """``obj`` in ``cell`` among others; with a ``distractor``, that object is somewhere else too.

    A distractor tells a changed fact from the old one: after the look of an entity is edited, a scene
    that holds both the new look and the old one asks which of them the model now takes it to be.
    """
    if distractor is None:
        return _among_others(rng, obj, cell)
    others = _other_objects(rng, int(rng.integers(0, 3)), {obj, distractor})
    return _place(rng, [distractor, *others], {cell: obj})


def entity_spec(
    rng: np.random.Generator, e: str, cell: int, look: Obj, distractor: Obj | None = None
) -> Spec:
    """The entity question about ``e`` (whose look is ``look``) in ``cell``: where is it / draw it there."""
    key = (e, cell)
    scene = _scene_with(rng, look, cell, distractor)
    return Spec(
        "entity",
        Category.WORLD_KNOWLEDGE,
        key,
        f"where is the {e}",
        scene,
        POSITIONS[cell],
        "position",
        cell,
        f"draw a {e} in the {POSITIONS[cell]}",
        None,
        _at_check(look, cell),
        _place(rng, [], {cell: look}),
        extra={"entity": e},
    )


def k_entity(rng: np.random.Generator) -> Spec:
    """Invented entities with a definite look (text-to-image): where is the zorp / draw a zorp in P."""
    e = ENTITIES[int(rng.integers(len(ENTITIES)))]
    cell = int(rng.integers(GRID * GRID))
    return entity_spec(rng, e, cell, LOOKS[e])


def pet_spec(
    rng: np.random.Generator,
    p: str,
    cell: int,
    pet: str,
    look: Obj,
    edit: bool = False,
    distractor: Obj | None = None,
) -> Spec:
    """The two-hop question about ``p``'s pet ``pet`` (whose look is ``look``) in ``cell``."""
    key = (p, cell)
    scene = _scene_with(rng, look, cell, distractor)
    if not edit:
        return Spec(
            "pet",
            Category.WORLD_KNOWLEDGE,
            key,
            f"where is the pet of {p}",
            scene,
            POSITIONS[cell],
            "position",
            cell,
            f"draw the pet of {p} in the {POSITIONS[cell]}",
            None,
            _at_check(look, cell),
            _place(rng, [], {cell: look}),
            extra={"person": p, "entity": pet},
        )
    base = list(scene)
    base[cell] = None
    base_scene = tuple(base)
    return Spec(
        "pet_edit",
        Category.WORLD_KNOWLEDGE,
        key,
        f"where is the pet of {p}",
        scene,
        POSITIONS[cell],
        "position",
        cell,
        f"add the pet of {p} in the {POSITIONS[cell]}",
        base_scene,
        {"type": "scene", "scene": [list(o) if o else None for o in scene]},
        scene,
        extra={"person": p, "entity": pet},
    )


def k_pet(rng: np.random.Generator, edit: bool = False) -> Spec:
    """Multi-hop facts: where is the pet of X / draw (or add, as an edit) the pet of X in P."""
    p = PEOPLE[int(rng.integers(len(PEOPLE)))]
    cell = int(rng.integers(GRID * GRID))
    return pet_spec(rng, p, cell, PETS[p], LOOKS[PETS[p]], edit)


# -- Reasoning -------------------------------------------------------------------------------------------
def k_sides(rng: np.random.Generator) -> Spec:
    """The shape with one more side (edit): name it / replace the shape with it."""
    shape = ("triangle", "square")[int(rng.integers(2))]
    nxt = next(s for s, n in SIDES.items() if n == SIDES[shape] + 1)
    colour = COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))]
    cell = int(rng.integers(GRID * GRID))
    key = (colour, shape, cell)
    others = [o for o in _ALL_OBJECTS if o[0] != colour]
    distract = [others[int(i)] for i in rng.integers(len(others), size=int(rng.integers(0, 3)))]
    scene = _place(rng, distract, {cell: (colour, shape)})
    out = list(scene)
    out[cell] = (colour, nxt)
    return Spec(
        "sides",
        Category.REASONING,
        key,
        f"which shape has one more side than the {colour} shape",
        scene,
        nxt,
        "shape",
        nxt,
        f"replace the {colour} shape with the shape that has one more side",
        scene,
        {"type": "scene", "scene": [list(o) if o else None for o in out]},
        tuple(out),
    )


def k_pattern(rng: np.random.Generator) -> Spec:
    """Pattern completion, multiple choice (edit): which option completes it / complete it."""
    colours = [COLOUR_NAMES[int(i)] for i in rng.choice(len(COLOUR_NAMES), size=3, replace=False)]
    shapes = [SHAPES[int(i)] for i in rng.choice(len(SHAPES), size=3, replace=False)]
    missing = int(rng.integers(GRID * GRID))
    key = (tuple(colours), tuple(shapes), missing)
    full = tuple((colours[r], shapes[c]) for r in range(GRID) for c in range(GRID))
    given = tuple(None if i == missing else o for i, o in enumerate(full))
    right = full[missing]
    r, c = row_col(missing)
    wrong_colour = (colours[(r + 1) % GRID], shapes[c])
    wrong_shape = (colours[r], shapes[(c + 1) % GRID])
    options = [right, wrong_colour, wrong_shape]
    order = rng.permutation(3)
    letters = "abc"
    listed = " ".join(f"{letters[k]} {obj_words(options[int(o)])}" for k, o in enumerate(order))
    answer = letters[int(np.where(order == 0)[0][0])]
    return Spec(
        "pattern",
        Category.REASONING,
        key,
        f"which option completes the pattern {listed}",
        given,
        answer,
        "option",
        answer.upper(),
        "complete the pattern",
        given,
        {"type": "scene", "scene": [list(o) for o in full]},
        full,
        choice=answer.upper(),
    )


def k_arithmetic(rng: np.random.Generator) -> Spec:
    """Arithmetic over counts (text-to-image): how many together / draw n plus m X."""
    n1, n2 = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    c1, c2 = (COLOUR_NAMES[int(i)] for i in rng.choice(len(COLOUR_NAMES), size=2, replace=False))
    target = (c1, SHAPES[int(rng.integers(len(SHAPES)))])
    key = (n1, n2, target)
    objs = [(c1, SHAPES[int(rng.integers(len(SHAPES)))]) for _ in range(n1)] + [
        (c2, SHAPES[int(rng.integers(len(SHAPES)))]) for _ in range(n2)
    ]
    total = n1 + n2
    return Spec(
        "arithmetic",
        Category.REASONING,
        key,
        f"how many {c1} shapes and {c2} shapes are there together",
        _place(rng, objs),
        str(total),
        "number",
        total,
        f"draw {n1} plus {n2} {obj_words(target, 2)}",
        None,
        {"type": "count", "targets": [[*target, total]]},
        _place(rng, [target] * total),
    )


KINDS: dict[str, tuple[Category, Callable[[np.random.Generator], Spec]]] = {
    "count": (Category.NUMERICAL_PERCEPTION, k_count),
    "countswap": (Category.NUMERICAL_PERCEPTION, k_countswap),
    "position": (Category.INSTRUCTION_FOLLOWING, k_position),
    "relation": (Category.INSTRUCTION_FOLLOWING, k_relation),
    "rule": (Category.INSTRUCTION_FOLLOWING, k_rule),
    "entity": (Category.WORLD_KNOWLEDGE, k_entity),
    "pet": (Category.WORLD_KNOWLEDGE, k_pet),
    "pet_edit": (Category.WORLD_KNOWLEDGE, lambda rng: k_pet(rng, edit=True)),
    "sides": (Category.REASONING, k_sides),
    "pattern": (Category.REASONING, k_pattern),
    "arithmetic": (Category.REASONING, k_arithmetic),
}


def sample(kind: str, rng: np.random.Generator, split: str) -> Spec:
    """Draw an item of ``kind`` whose combination lies in ``split`` ('train' or 'test')."""
    make = KINDS[kind][1]
    for _ in range(10_000):
        spec = make(rng)
        if split_of(kind, spec.key) == split:
            return spec
    raise RuntimeError(f"no {split} combination found for {kind}")
