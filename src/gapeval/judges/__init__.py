"""Judges: the protocol, the registry, the judging pipeline and the rule-based judges."""

from gapeval.judges.base import Decision, Judge, JudgeTask, judge_run, load_judge

__all__ = ["Decision", "Judge", "JudgeTask", "judge_run", "load_judge"]
