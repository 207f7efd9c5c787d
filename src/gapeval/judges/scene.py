"""The exact judge of the shapes world: answers by rule, images by parsing them back into scenes.

It decides every item of the built-in suites exactly and abstains on anything else. Images from any
model work: the parser reads any image of the world (resized to 48x48 first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from gapeval.items import Direction
from gapeval.judges.base import Decision, JudgeTask, text_hash
from gapeval.suites.shapes import tasks, world

SCENE_JUDGE_VERSION = "scene-judge-v1"


class SceneJudge:
    """Exact judge for items whose references come from the shapes world."""

    judge_id = "scene"
    rubric_hash = text_hash(SCENE_JUDGE_VERSION)
    spec = "scene"

    @classmethod
    def from_spec(cls, arg: str, **_: Any) -> SceneJudge:
        """``scene`` takes no argument."""
        return cls()

    def judge_batch(self, tasks_: Sequence[JudgeTask]) -> list[Decision]:
        """Decide each task exactly, or abstain when it is not from the shapes world."""
        out: list[Decision] = []
        for task in tasks_:
            ref = task.item.refs.structured
            if not isinstance(ref, dict) or ref.get("world") != "shapes-v1":
                out.append(Decision.abstain("not an item of the shapes world"))
                continue
            if task.direction is Direction.UND:
                ok, reason = tasks.check_answer(
                    str(ref["answer_type"]), ref["answer_value"], task.output.text or ""
                )
                out.append(Decision.decide(ok, reason))
                continue
            if task.image_path is None:
                out.append(Decision.fail("image missing from the store"))
                continue
            with Image.open(task.image_path) as img:
                scene = world.parse(img)
            check = ref["gen_check"]
            assert isinstance(check, dict)
            ok, reason = tasks.check_scene(check, scene)
            out.append(Decision.decide(ok, reason, scene=[list(o) if o else None for o in scene]))
        return out
