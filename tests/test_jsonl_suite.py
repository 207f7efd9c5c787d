"""Our own JSONL suite format."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from gapeval.errors import GapevalError
from gapeval.items import Category
from gapeval.suites import load_suite


def write(tmp_path, lines) -> str:
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "img" / "q.png")
    path = tmp_path / "suite.jsonl"
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")
    return str(path)


GOOD = {
    "id": "q1",
    "category": "Reasoning",
    "subcategory": "puzzle",
    "und": {"prompt": "Which?", "images": ["img/q.png"]},
    "gen": {"prompt": "Mark it", "input_image": "img/q.png"},
    "refs": {"text": "B", "choice": "B"},
}


def test_loads_items(tmp_path) -> None:
    suite = load_suite(
        write(tmp_path, [GOOD, {**GOOD, "id": "q2", "category": "counting", "refs": {"counts": {"Cat": 2}}}])
    )
    a, b = suite.items
    assert a.category is Category.REASONING and a.gen.is_edit and a.refs.choice == "B"
    assert b.category is Category.NUMERICAL_PERCEPTION and b.refs.counts == {"cat": 2}
    assert load_suite(str(tmp_path)).content_hash() == suite.content_hash()  # the folder works too


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({**GOOD, "category": "poetry"}, "category"),
        ({**GOOD, "und": {"prompt": ""}}, "und.prompt"),
        ({**GOOD, "gen": {"prompt": "x", "input_image": "../../x.png"}}, "gen.input_image"),
        ({**GOOD, "refs": {"counts": {"cat": "two"}}}, "refs.counts"),
        ({**GOOD, "id": "q1"}, "id"),
    ],
)
def test_bad_lines_name_line_and_field(tmp_path, bad, field) -> None:
    path = write(tmp_path, [GOOD, bad])
    with pytest.raises(GapevalError) as info:
        load_suite(path)
    assert info.value.field == field and info.value.file is not None and info.value.file.endswith(":2")
    suite = load_suite(path, skip_invalid=True)
    assert len(suite.items) == 1 and suite.skipped[0].field == field


def test_invalid_json_line(tmp_path) -> None:
    with pytest.raises(GapevalError, match="not valid JSON"):
        load_suite(write(tmp_path, ["{nope"]))


def test_a_sidecar_names_the_suite_its_judges_and_its_decoding(tmp_path) -> None:
    path = write(tmp_path, [GOOD])
    (tmp_path / "suite.json").write_text(json.dumps({"name": "mine", "defaults": {"samples_gen": 3},
                                                     "judges": ["scene"]}))  # fmt: skip
    suite = load_suite(path)
    assert (suite.name, suite.defaults, suite.judges) == ("mine", {"samples_gen": 3}, ("scene",))
    (tmp_path / "suite.json").write_text(json.dumps({"judges": "scene"}))
    with pytest.raises(GapevalError) as exc:
        load_suite(path)
    assert exc.value.file == str(tmp_path / "suite.json") and exc.value.field == "judges"
    (tmp_path / "suite.json").write_text(json.dumps({"defaults": {"samples_gen": 0}}))
    with pytest.raises(GapevalError, match="at least 1") as exc:
        load_suite(path)
    assert exc.value.field == "defaults.samples_gen"
