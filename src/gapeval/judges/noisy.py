"""A judge wrong at known rates: the exact ``scene`` judge's verdicts, flipped per direction.

``noisy:und=SENS/FP,gen=SENS/FP[,seed=N]`` passes a truly right output with probability ``SENS`` and a
truly wrong one with probability ``FP``, per direction, the truth being what ``scene`` decides on the
built-in world. It is what an audit must recover (``gapeval audit RUN --judge noisy:... --truth scene``)
and what a correction must undo; a judge harsher on images than on text shows how a judge gap reads as a
model gap. Each output's draw comes from its content and the seed, so judging again gives the same
verdicts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from gapeval.errors import GapevalError
from gapeval.judges.base import Decision, ExactJudge, JudgeContext, JudgeTask
from gapeval.judges.scene import SCENE_JUDGE_VERSION, SceneJudge
from gapeval.records import VerdictStatus


def parse_rates(arg: str) -> tuple[dict[str, tuple[float, float]], int]:
    """``und=0.9/0.05,gen=0.7/0.2,seed=3`` -> per direction (sensitivity, false-pass rate), and the seed."""
    rates: dict[str, tuple[float, float]] = {}
    seed = 0
    for part in filter(None, arg.split(",")):
        key, _, value = part.partition("=")
        try:
            if key == "seed":
                seed = int(value)
                continue
            sens, fp = (float(x) for x in value.split("/"))
        except ValueError:
            raise GapevalError(f"{part!r} is not DIRECTION=SENSITIVITY/FALSE_PASS (e.g. gen=0.8/0.1)",
                               field="judge") from None  # fmt: skip
        if key not in ("und", "gen") or not (0 <= sens <= 1 and 0 <= fp <= 1):
            raise GapevalError(
                f"{part!r}: the direction is und or gen and both rates lie in [0, 1]", field="judge"
            )
        rates[key] = (sens, fp)
    missing = {"und", "gen"} - set(rates)
    if missing:
        raise GapevalError(f"noisy needs rates for {' and '.join(sorted(missing))} (e.g. noisy:und=0.95/0.05,"
                           "gen=0.8/0.1)", field="judge")  # fmt: skip
    return rates, seed


class NoisyJudge(ExactJudge):
    """The scene judge's verdicts, flipped at known per-direction rates (deterministic per output)."""

    protocol = "simulated"
    version = f"noisy-{SCENE_JUDGE_VERSION}"

    def __init__(self, arg: str) -> None:
        self.rates, self.seed = parse_rates(arg)
        (su, fu), (sg, fg) = self.rates["und"], self.rates["gen"]
        seed = f",seed={self.seed}" if self.seed else ""
        self.judge_id = self.spec = f"noisy:und={su:g}/{fu:g},gen={sg:g}/{fg:g}{seed}"
        self.truth = SceneJudge()

    @classmethod
    def from_spec(cls, arg: str, context: JudgeContext) -> NoisyJudge:
        """``noisy:und=SENS/FP,gen=SENS/FP[,seed=N]``."""
        return cls(arg)

    def _draw(self, task: JudgeTask) -> float:
        """A uniform number in [0, 1) fixed by the output's content and the seed."""
        key = f"{self.seed}\0{task.output.output_key}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64

    def judge_batch(self, tasks: Sequence[JudgeTask]) -> list[Decision]:
        """Decide as ``scene`` does, then pass at the direction's rate for that truth."""
        out = []
        for task, truth in zip(tasks, self.truth.judge_batch(tasks), strict=True):
            if truth.status is not VerdictStatus.OK:
                out.append(truth)
                continue
            sens, fp = self.rates[str(task.direction)]
            passed = self._draw(task) < (sens if truth.passed else fp)
            out.append(
                Decision.decide(passed, f"simulated ({'truly right' if truth.passed else 'truly wrong'})")
            )
        return out
