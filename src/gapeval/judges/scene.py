"""The exact judge of the shapes world: answers by rule, images by reading them back into scenes.

It decides every item of the built-in suites exactly and abstains on anything else. Images from any
model work: the world's parser reads any image (resized to 48x48 first). A cell that is no object of the
world (black, noise, a photo, an off-palette colour) is unreadable, and an image with an unreadable cell
fails whatever its check asks: an always-black model passes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from gapeval.images import open_rgb
from gapeval.items import Direction
from gapeval.judges.base import Decision, ExactJudge, JudgeTask
from gapeval.judges.rules import WORD_NUMBERS, extract_option, stated_count
from gapeval.suites.shapes import world
from gapeval.suites.shapes.tasks import COLOUR_NAMES, holds, plural
from gapeval.suites.shapes.world import POSITIONS, SHAPES, Scene, counts

# v2: unreadable cells fail the image (v1 read any pixels as the nearest object).
SCENE_JUDGE_VERSION = "scene-judge-v2"


def check_scene(check: dict[str, Any], scene: Scene) -> tuple[bool, str]:
    """Does a (parsed) scene satisfy a generation check? Returns the verdict and a reason."""
    kind = check["type"]
    if kind == "count":
        have = counts(scene)
        wrong = [(c, s, n, have[(c, s)]) for c, s, n in check["targets"] if have[(c, s)] != n]
        if wrong:
            return False, "; ".join(f"{n} {c} {plural(s, n)} asked, {k} drawn" for c, s, n, k in wrong)
        return True, "every target count is right"
    if kind == "at":
        obj, cell = tuple(check["obj"]), check["cell"]
        got = scene[cell]
        ok = got == obj
        return ok, f"{POSITIONS[cell]} holds {' '.join(got) if got else 'nothing'}"
    if kind == "relation":
        a, b = tuple(check["a"]), tuple(check["b"])
        cells_a = [i for i, o in enumerate(scene) if o == a]
        cells_b = [i for i, o in enumerate(scene) if o == b]
        if not cells_a or not cells_b:
            return False, "an object of the relation is missing"
        ok = any(holds(check["rel"], i, j) for i in cells_a for j in cells_b)
        return ok, f"relation {'holds' if ok else 'does not hold'}"
    if kind == "scene":
        want = tuple(tuple(o) if o else None for o in check["scene"])
        diff = [i for i in range(len(want)) if want[i] != scene[i]]
        return not diff, "scene matches" if not diff else f"{len(diff)} cell(s) differ: " + ", ".join(
            POSITIONS[i] for i in diff
        )
    raise ValueError(f"unknown check {kind!r}")


def _last(words: list[str], vocab: set[str]) -> str | None:
    hits = [w for w in words if w in vocab]
    return hits[-1] if hits else None


def _last_position(text: str) -> int | None:
    found: list[tuple[int, int]] = []
    for cell, name in enumerate(POSITIONS):
        found += [(m.start(), cell) for m in re.finditer(rf"\b{name}\b", text)]
    # "top left" also contains "top" and "left": at the same end, the longer phrase wins
    best: tuple[int, int, int] | None = None
    for start, cell in found:
        end = start + len(POSITIONS[cell])
        cand = (end, len(POSITIONS[cell]), cell)
        if best is None or cand[:2] > best[:2]:
            best = cand
    return None if best is None else best[2]


def check_answer(answer_type: str, value: Any, text: str) -> tuple[bool, str]:
    """Decide an understanding answer of the shapes world exactly (free-form text is accepted)."""
    low = text.lower()
    words = re.findall(r"[a-z]+|\d+", low)
    if answer_type == "number":
        nums = [int(w) if w.isdigit() else WORD_NUMBERS[w] for w in words if w.isdigit() or w in WORD_NUMBERS]
        if not nums:
            return False, "no number stated"
        return nums[-1] == value, f"said {nums[-1]}, expected {value}"
    if answer_type == "counts":
        stated = {name: stated_count(low, name) for name in value}
        wrong = {k: v for k, v in stated.items() if v != value[k]}
        return not wrong, "counts right" if not wrong else "; ".join(
            f"{k}: said {v}, expected {value[k]}" for k, v in wrong.items()
        )
    if answer_type == "object":
        colour = _last(words, set(COLOUR_NAMES))
        shape = _last([w.rstrip("s") if w.rstrip("s") in SHAPES else w for w in words], set(SHAPES))
        return [colour, shape] == list(value), f"said {colour} {shape}, expected {value[0]} {value[1]}"
    if answer_type == "yesno":
        said = _last(words, {"yes", "no"})
        return said == ("yes" if value else "no"), f"said {said}"
    if answer_type == "position":
        cell = _last_position(low)
        return (
            cell == value,
            f"said {POSITIONS[cell] if cell is not None else 'no position'}, expected {POSITIONS[value]}",
        )
    if answer_type == "shape":
        shape = _last([w.rstrip("s") if w.rstrip("s") in SHAPES else w for w in words], set(SHAPES))
        return shape == value, f"said {shape}, expected {value}"
    if answer_type == "option":
        stripped = low.strip().strip(".()")
        option = stripped.upper() if stripped in {"a", "b", "c"} else extract_option(text)
        return option == value, f"chose {option}, expected {value}"
    raise ValueError(f"unknown answer type {answer_type!r}")


def judge_image(check: dict[str, Any], image: Image.Image) -> tuple[bool, str, Scene]:
    """Read an image and decide it against a generation check; unreadable cells fail it."""
    scene, unreadable = world.read(image)
    if unreadable:
        where = ", ".join(POSITIONS[i] for i in unreadable)
        return False, f"{len(unreadable)} cell(s) are no object of the world: {where}", scene
    ok, reason = check_scene(check, scene)
    return ok, reason, scene


class SceneJudge(ExactJudge):
    """Exact judge for items whose references come from the shapes world."""

    judge_id = "scene"
    version = SCENE_JUDGE_VERSION

    def judge_batch(self, tasks_: Sequence[JudgeTask]) -> list[Decision]:
        """Decide each task exactly, or abstain when it is not from the shapes world."""
        out: list[Decision] = []
        for task in tasks_:
            ref = task.item.refs.structured
            if not isinstance(ref, dict) or ref.get("world") != "shapes-v1":
                out.append(Decision.abstain("not an item of the shapes world"))
                continue
            if task.direction is Direction.UND:
                ok, reason = check_answer(
                    str(ref["answer_type"]), ref["answer_value"], task.output.text or ""
                )
                out.append(Decision.decide(ok, reason))
                continue
            if task.image_path is None:
                out.append(Decision.fail("image missing from the store"))
                continue
            check = ref["gen_check"]
            assert isinstance(check, dict)
            ok, reason, scene = judge_image(check, open_rgb(task.image_path))
            out.append(Decision.decide(ok, reason, scene=[list(o) if o else None for o in scene]))
        return out
