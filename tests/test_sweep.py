"""Sweep specs: validation, and a local sweep that resumes as a whole."""

from __future__ import annotations

import pytest
import yaml
from tests.conftest import invoke

from gapeval.errors import GapevalError
from gapeval.sweep import load_sweep, sweep


def write(tmp_path, spec: dict[str, object]):
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"models": [{"model": "toy"}]}, "suites", "field required"),
        (
            {"suites": ["shapes-v1-mini"], "models": [{"model": "toy"}, {"model": "toy"}]},
            None,
            "share a label",
        ),
        ({"suites": ["shapes-v1-mini"], "models": [{"model": "toy", "batch": 2}]}, "models.0.batch", "extra"),
        (
            {"suites": ["shapes-v1-mini"], "models": [{"model": "toy"}], "judges": [[]]},
            None,
            "at least one judge",
        ),
    ],
)
def test_a_bad_sweep_spec_is_one_error_naming_the_field(tmp_path, spec, field, message) -> None:
    with pytest.raises(GapevalError) as exc:
        load_sweep(write(tmp_path, spec))
    assert exc.value.field == field and message in exc.value.message.lower()


def test_a_local_sweep_judges_each_run_with_every_chain_and_resumes(tmp_path, cli) -> None:
    spec = {"name": "s", "suites": ["shapes-v1-mini"], "models": [{"model": "toy", "label": "toy"}],
            "seeds": [3], "judges": [["scene"], ["rules", "scene"]]}  # fmt: skip
    res = sweep(load_sweep(write(tmp_path, spec)), tmp_path / "out", report=False)
    assert [(r.label, r.done) for r in res.runs] == [("toy seed 3", 96 * 3)]
    assert set(res.scores) == {("shapes-v1-mini", ("scene",)), ("shapes-v1-mini", ("rules", "scene"))}
    for scored in res.scores.values():
        (run,) = scored.runs
        assert run.overall.n_items == 96
    code, stdout, stderr = invoke(cli, "sweep", str(tmp_path / "sweep.yaml"), "-o", str(tmp_path / "out"),
                                  "--no-html")  # fmt: skip
    assert code == 0 and "resumed, 0 outputs made" in stderr and "judged by rules > scene" in stdout
