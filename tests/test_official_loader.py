"""Loading the authors' folder layout, and the one-line errors for every kind of bad input."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from tests.conftest import add_item, invoke, run_replay

from gapeval.errors import GapevalError
from gapeval.items import Category
from gapeval.store import RunStore
from gapeval.suites import load_suite
from gapeval.suites.official import load_official, parse_choice, parse_counts


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="PNG")
    return buf.getvalue()


def test_sample_tree_loads_every_variant(sample_tree) -> None:
    suite = load_official(sample_tree)
    items = suite.by_id()
    assert len(items) == 12
    assert {i.source_category for i in items.values()} == {
        "counting",
        "rule_based",
        "Multi Hop",
        "reasoning",
        "physics",
    }
    assert set(suite.category_counts()) == set(Category)
    # list-shaped prompt.json, `problem` fallback, `explain` counting spec, misspelt inage/ folder
    cnt2 = items["cnt-2"]
    assert cnt2.und.prompt.startswith("Count the shapes")
    assert cnt2.refs.counts == {"red circle": 2}
    assert cnt2.und.images and "inage" in cnt2.und.images[0].path
    # structured counting task
    assert items["cnt-1"].refs.counts == {"red circle": 2, "blue square": 1}
    assert items["cnt-1"].refs.structured["task"][0]["object"] == "red circle"  # type: ignore[index]
    # list reference joined with newlines; `img` key; edit of the question image
    rule1 = items["rule-1"]
    assert rule1.refs.text == "blue\nall circles become blue"
    assert rule1.gen.is_edit and rule1.gen.input_image == rule1.und.images[0]
    # `image` key in a subfolder, `expect_text`, `expect_image`
    rule2 = items["rule-2"]
    assert rule2.refs.text == "two red circles" and rule2.refs.image is not None
    # Multi Hop: text-to-image, `answer` key, reference image from ref/
    wk1 = items["wk-1"]
    assert wk1.category is Category.WORLD_KNOWLEDGE and not wk1.gen.is_edit
    assert wk1.refs.text == "triangle" and wk1.refs.image is not None and "ref" in wk1.refs.image.path
    assert items["wk-2"].refs.text.startswith("The Eiffel Tower")  # gt_prompt
    # multiple choice from `input_image`; option letter parsed
    assert items["rs-1"].refs.choice == "B" and items["rs-2"].refs.choice == "C"
    assert items["rs-1"].und.images[0].path.endswith("question.png")
    assert items["rs-3"].refs.choice is None
    # images are referenced by path and hash, never inlined
    assert len(items["rs-1"].und.images[0].sha256) == 64
    assert items["ph-1"].category is Category.REASONING
    assert items["cnt-1"].raw["subcategory"] == "Objects Counting"


def test_content_hash_ignores_location_and_sees_content(sample_tree, tmp_path) -> None:
    import shutil

    moved = tmp_path / "elsewhere"
    shutil.copytree(sample_tree, moved)
    assert load_official(moved).content_hash() == load_official(sample_tree).content_hash()
    (moved / "data_5" / "prompt.json").write_text(
        (moved / "data_5" / "prompt.json").read_text().replace("triangle", "square")
    )
    assert load_official(moved).content_hash() != load_official(sample_tree).content_hash()


BAD_CASES = {
    "missing-und": ({"id": "x1", "category": "counting", "gen_prompt": "g"}, {}, "und_prompt"),
    "missing-gen": ({"id": "x2", "category": "counting", "und_prompt": "u"}, {}, "gen_prompt"),
    "unknown-category": (
        {"id": "x3", "category": "poetry", "und_prompt": "u", "gen_prompt": "g"},
        {},
        "category",
    ),
    "truncated-image": (
        {"id": "x4", "category": "rule_based", "und_prompt": "u", "gen_prompt": "g", "img": "q.png"},
        {"q.png": png()[:60]},
        "img",
    ),
    "unreadable-image": (
        {"id": "x5", "category": "rule_based", "und_prompt": "u", "gen_prompt": "g", "image": "q.png"},
        {"q.png": b"not an image at all"},
        "image",
    ),
    "escaping-path": (
        {
            "id": "x6",
            "category": "rule_based",
            "und_prompt": "u",
            "gen_prompt": "g",
            "img": "../../outside.png",
        },
        {},
        "img",
    ),
    "duplicate-id": ({"id": "cnt-1", "category": "counting", "und_prompt": "u", "gen_prompt": "g"}, {}, "id"),
    "bad-json": ("{oops", {}, None),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_and_field(sample_tree, case) -> None:
    prompt, files, field = BAD_CASES[case]
    folder = add_item(sample_tree, "data_99", prompt, files)
    with pytest.raises(GapevalError) as info:
        load_official(sample_tree)
    err = info.value
    assert err.file == str(folder / "prompt.json")
    assert err.field == field
    assert "\n" not in err.line()
    # --skip-invalid loads the rest and lists what it skipped
    suite = load_official(sample_tree, skip_invalid=True)
    assert len(suite.items) == 12
    assert len(suite.skipped) == 1 and suite.skipped[0].field == field


def test_cli_error_is_one_line_and_run_survives(cli, sample_tree, tmp_path) -> None:
    out = tmp_path / "run"
    code, _, _ = run_replay(cli, sample_tree, out)
    assert code == 0
    with RunStore.open(out) as store:
        before = [o.model_dump() for o in store.outputs()]
    add_item(
        sample_tree,
        "data_50",
        {
            "id": "z",
            "category": "counting",
            "und_prompt": "u",
            "gen_prompt": "g",
            "img": "../../../etc/passwd",
        },
    )
    code, _stdout, stderr = invoke(cli, "run", str(sample_tree), "-m", "replay:demo-umm", "-o", str(out))
    assert code == 2
    line = stderr.strip()
    assert "\n" not in line and "data_50" in line and "field 'img'" in line and "escapes" in line
    with RunStore.open(out) as store:
        assert [o.model_dump() for o in store.outputs()] == before
    # the good items still run with --skip-invalid, listing the skipped one
    code, _, stderr = run_replay(cli, sample_tree, tmp_path / "r2", "--skip-invalid")
    assert code == 0 and "skipped:" in stderr and "data_50" in stderr


def test_option_and_count_parsing() -> None:
    assert parse_choice("B") == "B"
    assert parse_choice("(c)") == "C"
    assert parse_choice("Answer: D") == "D"
    assert parse_choice("Because the ball falls") is None
    assert parse_counts({"cat": 3, "dog": "2"}) == {"cat": 3, "dog": 2}
    assert parse_counts("3 cats, 2 dogs") == {"cats": 3, "dogs": 2}
    assert parse_counts(None, [{"name": "Apple", "count": 4}]) == {"apple": 4}
    assert parse_counts("no numbers") is None


def test_unknown_suite_is_a_clear_error(cli) -> None:
    code, _, err = invoke(cli, "validate", "/no/such/place")
    assert code == 2 and "unknown suite" in err


def test_validate_lists_categories(cli, sample_tree) -> None:
    code, out, _ = invoke(cli, "validate", str(sample_tree), "--json")
    assert code == 0 and '"items": 12' in out


def test_named_suite_needs_fetch(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_HOME", str(tmp_path))
    with pytest.raises(GapevalError, match="gapeval fetch gapeval"):
        load_suite("gapeval")
