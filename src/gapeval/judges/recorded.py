"""The authors' own verdicts, read from ``new_res.json`` beside replayed outputs.

Their pipeline writes, per model folder, ``text_eval`` (``status`` and ``parsed`` JSON with ``score`` or
``judge_result``) and ``image_eval`` (one entry per generated image). Reading them lets published model
outputs be scored with the published judgments, and lets any other judge be compared with them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gapeval.errors import GapevalError
from gapeval.items import Direction
from gapeval.judges.base import Decision, ExactJudge, JudgeContext, JudgeTask


def is_positive(score: Any) -> bool | None:
    """The authors' reading of a score: 1/true/yes pass, 0/false/no fail, anything else undecided."""
    if isinstance(score, bool):
        return score
    if isinstance(score, (int, float)):
        return score == 1
    if isinstance(score, str) and score.strip().lower() in {"1", "true", "yes", "0", "false", "no"}:
        return score.strip().lower() in {"1", "true", "yes"}
    return None


def _score(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return None
    parsed = entry.get("parsed")
    if not isinstance(parsed, dict):
        return None
    for key in ("score", "judge_result", "judeg_result", "verdict"):
        if key in parsed:
            return parsed[key]
    return None


class RecordedJudge(ExactJudge):
    """Verdicts already on disk in the authors' layout."""

    protocol = "recorded"
    version = "recorded-new_res-v1"

    def __init__(self, root: Path, model_dir_name: str) -> None:
        self.root = root
        self.model_dir_name = model_dir_name
        self.judge_id = f"recorded:{model_dir_name}"
        self.spec = f"recorded:{model_dir_name}"

    @classmethod
    def from_spec(cls, arg: str, context: JudgeContext) -> RecordedJudge:
        """``recorded`` reads the replayed model's folder; ``recorded:NAME`` another model folder."""
        manifest, suite = context.manifest, context.suite
        name = arg
        if not name:
            family, _, name = manifest.spec.model.partition(":")
            if family != "replay":
                raise GapevalError(
                    "recorded verdicts exist only for replayed runs; name the folder: recorded:MODEL",
                    field="judge",
                )
        root = Path(manifest.model_description.get("root") or suite.root)
        return cls(root, name)

    def _record(self, task: JudgeTask) -> dict[str, Any] | None:
        path = self.root / task.item.source / self.model_dir_name / "new_res.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def judge_batch(self, tasks: Sequence[JudgeTask]) -> list[Decision]:
        """Look each output's recorded verdict up."""
        out: list[Decision] = []
        for task in tasks:
            record = self._record(task)
            if record is None:
                out.append(Decision.abstain("no new_res.json"))
                continue
            if task.direction is Direction.UND:
                entry = record.get("text_eval")
            else:
                file = Path(str(task.output.meta.get("file", ""))).name
                entry = next(
                    (
                        e
                        for e in record.get("image_eval") or []
                        if isinstance(e, dict) and Path(str(e.get("generated_image", ""))).name == file
                    ),
                    None,
                )
                if isinstance(entry, dict) and entry.get("eval_type") == "image_text_balance":
                    # The balance check measures consistency with the model's own text, not correctness.
                    out.append(Decision.abstain("recorded image verdict is a consistency check"))
                    continue
            passed = (
                is_positive(_score(entry))
                if isinstance(entry, dict) and entry.get("status") == "ok"
                else None
            )
            if passed is None:
                out.append(Decision.abstain("no usable recorded verdict"))
            else:
                raw = str(entry.get("raw_response", "")) if isinstance(entry, dict) else ""
                out.append(Decision.decide(passed, "recorded verdict", raw))
        return out
