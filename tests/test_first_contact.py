"""First contact: every command that writes works from any folder with relative paths and its defaults;
every tabular input goes through one reader; every unusable path or name is named in its one-line error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from tests.conftest import add_item, invoke

from gapeval import api
from gapeval.files import read_table
from gapeval.models.toy import shipped_checkpoint
from gapeval.suites import load_suite

SMALL_INJECT = {
    "experiment": "inject",
    "name": "small",
    "facts": [{"name": "brosk", "look": "red triangle"}],
    "arms": ["und"],
    "seeds": [0],
    "train": {"steps": 3, "per_direction": 4, "replay": 4},
    "eval": {"per_fact": 2, "locality": 2, "samples_gen": 1, "n_boot": 50},
}
SMALL_EDIT = {**SMALL_INJECT, "experiment": "edit", "facts": [{"name": "zorp", "look": "blue triangle"}]}
TINY_TRAIN = [
    "--steps",
    "4",
    "--checkpoint-every",
    "2",
    "--eval-items",
    "0",
    "--batch-size",
    "4",
    "--d-model",
    "32",
    "--layers",
    "1",
]


def test_every_writing_command_works_with_relative_folders_from_any_working_directory(
    cli, tmp_path, monkeypatch
) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.chdir(work)
    Path("inject.yaml").write_text(yaml.safe_dump(SMALL_INJECT))
    Path("edit.yaml").write_text(yaml.safe_dump(SMALL_EDIT))
    Path("sweep.yaml").write_text("name: s\nsuites: [shapes-v1-mini]\nmodels: [toy]\n")
    commands = [
        ("toy train -o tt", TINY_TRAIN, "tt/final.pt"),
        ("curve tt -o cv --suite shapes-v1-mini --boot 20 --samples-gen 1", [], "cv/curve.csv"),
        ("run shapes-v1-mini -m toy -o r1 --fragility 0", [], "r1/report/index.html"),
        ("demo --suite shapes-v1-mini -o dm --fragility 0", [], "dm/report/index.html"),
        ("judge r1 -j scene", [], "r1/manifest.json"),
        ("report r1 -o rep --fragility 0 --boot 20", [], "rep/index.html"),
        ("export r1 -o share/r1.gapeval", [], "share/r1.gapeval"),
        ("report share/r1.gapeval -o rep2 --fragility 0 --boot 20", [], "rep2/index.html"),
        ("sweep sweep.yaml -o sw", [], "sw/shapes-v1-mini/report/index.html"),
        # the default folder (knowledge-inject), as the README's first knowledge command uses it
        ("knowledge inject inject.yaml", [], "knowledge-inject/knowledge.csv"),
        ("knowledge edit edit.yaml -o ke", [], "ke/report/index.html"),
    ]
    for command, extra, wrote in commands:
        code, out, err = invoke(cli, *command.split(), *extra)
        assert code == 0, f"{command}: {err}"
        assert Path(wrote).is_file(), f"{command} did not write {wrote}"
    # knowledge prints its transfer lines, and its evaluation suite's images are relative to the suite
    code, out, _ = invoke(cli, "knowledge", "inject", "inject.yaml", "--no-html")
    assert code == 0 and "train und -> gen evaluated" in out
    lines = Path("knowledge-inject/eval/suite.jsonl").read_text().splitlines()
    assert all(not Path(p).is_absolute() for line in lines for p in json.loads(line)["und"]["images"])


@pytest.mark.parametrize(
    ("command", "field"),
    [
        ("run shapes-v1-mini -m toy -o {out}", "--out"),
        ("demo --suite shapes-v1-mini -o {out}", "--out"),
        ("report RUN -o {out}", "--out"),
        ("export RUN -o {out}/x.gapeval", "--out"),
        ("curve ck -o {out}", "--out"),
        ("sweep SWEEP -o {out}", "--out"),
        ("toy train -o {out}", "--out"),
        ("knowledge inject INJECT -o {out}", "--out"),
        ("study mechanisms -o {out}", "--out"),
    ],
)
@pytest.mark.parametrize("where", ["the file", "under the file"])
def test_an_output_path_that_is_a_file_is_named_and_nothing_is_written(
    cli, tmp_path, monkeypatch, command, field, where
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("afile").write_text("mine\n")
    Path("inject.yaml").write_text(yaml.safe_dump(SMALL_INJECT))
    Path("sweep.yaml").write_text("suites: [shapes-v1-mini]\nmodels: [toy]\n")
    Path("ck").mkdir()
    for step in (1, 2):
        shutil.copy(shipped_checkpoint(), f"ck/step_{step:05d}.pt")
    run = tmp_path / "run"
    if "RUN" in command:
        api.run("shapes-v1-mini", "toy", out=run, samples_gen=1)
    out = "afile" if where == "the file" else "afile/sub"
    names = {
        "RUN": str(run),
        "CKPT": str(shipped_checkpoint()),
        "SWEEP": "sweep.yaml",
        "INJECT": "inject.yaml",
    }
    args = [names.get(a, a) for a in command.format(out=out).split()]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = invoke(cli, *args)
    assert code == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: afile") and f"field '{field}'" in line
    assert Path("afile").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_replay_name_no_item_has_is_named_with_the_names_that_exist(cli, sample_tree, tmp_path) -> None:
    out = tmp_path / "r"
    code, _, err = invoke(
        cli, "run", str(sample_tree), "-m", "replay:demo-umn", "-o", str(out), "-j", "rules"
    )
    assert code == 2
    says = "no item folder holds a folder 'demo-umn'; saved models: demo-umm"
    assert err.strip() == f"error: {sample_tree}: field 'model': {says}"
    assert not out.exists()


# -- the one tabular reader -------------------------------------------------------------------------------

RESPONSES_HEADER = "model,item,category,direction,y\n"
LABELS_HEADER = "item_id,direction,label\n"
SCORES_HEADER = "model,gap,x\n"

#: Malformed CSVs: (content, the line named, what the message says).
MALFORMED = {
    "short row": ("{h}a,b\n", 2, "fewer than the header's"),
    "long row": ("{h}{good},extra,more\n", 2, "more than the header's"),
    "NUL byte": ("{h}{good}\n{nul}\n", 3, "NUL byte"),
    "duplicate header": ("{dup}\n{good}\n", 1, "appears twice in the header"),
    "empty header name": ("{h_empty}\n{good}\n", 1, "has no name"),
    "unterminated quote": ('{h}"{good}\n', 2, "malformed CSV"),
    "huge field": ("{h}{huge}\n", 2, "longer than"),
    "empty file": ("", None, "no header row"),
}


def _case(kind: str, name: str) -> tuple[str, str]:
    header, good = {
        "responses": (RESPONSES_HEADER, "m,i1,Counting,und,1"),
        "labels": (LABELS_HEADER, "data_1,und,pass"),
        "scores": (SCORES_HEADER, "a,0.1,1"),
    }[kind]
    content, _, _ = MALFORMED[name]
    cols = header.strip().split(",")
    return content.format(
        h=header,
        good=good,
        nul=good.replace(",", ",\0", 1),
        dup=",".join([*cols, cols[0]]),
        h_empty=",".join([*cols, ""]),
        huge=good + "x" * 70_000,
    ), good


COMMANDS = {
    "responses": ["score", "--responses", "FILE"],
    "labels": ["agreement", "RUN", "--labels", "FILE"],
    "scores": ["correlate", "FILE"],
}


@pytest.mark.parametrize("kind", sorted(COMMANDS))
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_every_malformed_csv_is_one_line_naming_file_line_and_exit_2(
    cli, replay_run, tmp_path, kind, name
) -> None:
    api.judge(replay_run, ["rules"])
    content, _ = _case(kind, name)
    path = tmp_path / f"{kind}.csv"
    path.write_text(content)
    args = [str(replay_run) if a == "RUN" else str(path) if a == "FILE" else a for a in COMMANDS[kind]]
    code, out, err = invoke(cli, *args)
    _, line_no, says = MALFORMED[name]
    assert code == 2 and out == "", err
    assert err.count("\n") == 1 and "Traceback" not in err
    where = f"{path}:{line_no}" if line_no else f"{path}"
    assert err.startswith(f"error: {where}: ") and says in err, err


@pytest.mark.parametrize(
    ("kind", "row", "field", "says"),
    [
        ("responses", "m,i1,Counting,und,0.5x", "y", "not a number: '0.5x'"),
        ("responses", "m,i1,Counting,und,1.5", "y", "must lie in [0.0, 1.0], not 1.5"),
        ("responses", "m,i1,Counting,sideways,1", "direction", "must be one of und, gen"),
        ("responses", "m,,Counting,und,1", "item", "is empty"),
        ("labels", "data_1,und,maybe", "label", "must be one of"),
        ("labels", "data_1,both,pass", "direction", "must be one of und, gen"),
        ("scores", "a,inf,1", "gap", "not a finite number"),
        ("scores", "a,0.1,one", "x", "not a number: 'one'"),
    ],
)
def test_a_bad_value_names_its_line_and_column(cli, replay_run, tmp_path, kind, row, field, says) -> None:
    api.judge(replay_run, ["rules"])
    header = {"responses": RESPONSES_HEADER, "labels": LABELS_HEADER, "scores": SCORES_HEADER}[kind]
    path = tmp_path / f"{kind}.csv"
    path.write_text(header + row + "\n")
    args = [str(replay_run) if a == "RUN" else str(path) if a == "FILE" else a for a in COMMANDS[kind]]
    code, _, err = invoke(cli, *args)
    assert code == 2 and err.startswith(f"error: {path}:2: field '{field}': ") and says in err, err


@pytest.mark.parametrize(
    ("csv", "says"),
    [
        ("model,gap,x\na,0.1,1\nb,0.2,2\n", "needs at least 3 models"),
        ("model,gap,x\na,0.1,1\nb,0.2,1\nc,0.3,1\n", "the same for every model"),
        ("model\na\nb\nc\n", "no score column"),
    ],
)
def test_correlate_names_the_file_when_it_cannot_correlate(cli, tmp_path, csv, says) -> None:
    path = tmp_path / "scores.csv"
    path.write_text(csv)
    code, _, err = invoke(cli, "correlate", str(path), "--boot", "50")
    assert code == 2 and err.startswith(f"error: {path}: ") and says in err, err


def test_the_reader_skips_blank_lines_and_keeps_values_as_written(tmp_path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('\ufeffa,b\n\n1," x, y "\n\n2,3\n')
    header, rows = read_table(path, ["a"])
    assert header == ["a", "b"]
    assert [(r.where, r.values) for r in rows] == [
        (f"{path}:3", {"a": "1", "b": " x, y "}),
        (f"{path}:5", {"a": "2", "b": "3"}),
    ]
    assert rows[0].text("b") == "x, y" and rows[1].number("b") == 3.0


# -- the authors' layout ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "field", "says"),
    [
        ({"und_prompt": "   \n\t"}, "und_prompt", "understanding prompt is empty"),
        ({"und_prompt": None, "problem": " "}, "problem", "understanding prompt is empty"),
        ({"id": ["a", "b"]}, "id", "must be a string or an integer, not list"),
        ({"id": {"x": 1}}, "id", "must be a string or an integer, not dict"),
        ({"id": True}, "id", "must be a string or an integer, not bool"),
        ({"id": "  "}, "id", "not a usable id: '  '"),
        ({"id": "a\nb"}, "id", "not a usable id: 'a\\nb'"),
    ],
)
def test_the_authors_layout_refuses_empty_prompts_and_non_scalar_ids(
    cli, sample_tree, prompt, field, says
) -> None:
    base = {"category": "multi hop", "und_prompt": "How many?", "gen_prompt": "Draw two cats."}
    folder = add_item(sample_tree, "data_99", {**base, **prompt})
    code, _, err = invoke(cli, "validate", str(sample_tree))
    assert code == 2 and err.strip() == f"error: {folder / 'prompt.json'}: field '{field}': {says}"
    code, out, err = invoke(cli, "validate", str(sample_tree), "--skip-invalid", "--json")
    assert code == 0, err
    skipped = json.loads(out)["skipped"]
    assert [s for s in skipped if "data_99" in s] == [f"{folder / 'prompt.json'}: field '{field}': {says}"]


def test_an_integer_id_is_kept_as_its_text(sample_tree) -> None:
    base = {"category": "multi hop", "und_prompt": "How many?", "gen_prompt": "Draw two cats.", "id": 4242}
    add_item(sample_tree, "data_99", base)
    suite = load_suite(str(sample_tree))
    assert "4242" in {i.id for i in suite.items}


# -- the command line ------------------------------------------------------------------------------------


def test_help_keeps_brackets_and_version_is_printed(cli) -> None:
    from importlib.metadata import version

    code, out, _ = invoke(cli, "--version")
    assert code == 0 and out.strip() == f"gapeval {version('gapeval')}"
    code, out, _ = invoke(cli, "run", "--help")
    assert code == 0 and "'gapeval[ray]'" in " ".join(out.split())
    code, out, _ = invoke(cli, "fetch", "--help")
    assert "gapeval[hub]" in out


@pytest.mark.parametrize("spec", ["janus:/no/such/dir", "vlm:./not-here", "janus:a/b/c"])
def test_a_missing_checkpoint_folder_is_named_as_a_folder(cli, tmp_path, spec) -> None:
    code, _, err = invoke(cli, "run", "shapes-v1-mini", "-m", spec, "-o", str(tmp_path / "r"))
    path = spec.split(":", 1)[1]
    assert code == 2 and err.strip() == (
        f"error: {Path(path)}: field 'model': no such folder (nor a hub id: those are NAME or ORG/NAME)"
    )


def test_run_without_a_terminal_prints_plain_progress_lines(cli, tmp_path) -> None:
    code, _, err = invoke(
        cli,
        "run",
        "shapes-v1-mini",
        "-m",
        "toy",
        "-o",
        str(tmp_path / "r"),
        "--samples-gen",
        "1",
        "--fragility",
        "0",
        "--no-html",
    )
    assert code == 0, err
    lines = err.splitlines()
    assert any(ln.startswith("understanding: 96/96 (100%) outputs, ") for ln in lines), err
    assert any(ln.startswith("generation: 96/96 (100%) outputs, ") for ln in lines), err


def test_a_response_given_twice_is_refused_naming_both_lines(cli, tmp_path) -> None:
    path = tmp_path / "responses.csv"
    path.write_text(RESPONSES_HEADER + "m,i1,Counting,und,1\nm,i1,Counting,gen,0\nm,i1,Counting,und,0\n")
    code, _, err = invoke(cli, "score", "--responses", str(path))
    assert code == 2 and err.strip() == (
        f"error: {path}:4: field 'item': m / i1 / und is also on 2; one response each (average samples first)"
    )


def test_a_non_string_subcategory_is_refused(cli, sample_tree) -> None:
    prompt = {"category": "multi hop", "subcategory": ["a"], "und_prompt": "Who?", "gen_prompt": "Draw."}
    folder = add_item(sample_tree, "data_99", prompt)
    code, _, err = invoke(cli, "validate", str(sample_tree))
    assert (
        code == 2
        and err.strip() == f"error: {folder / 'prompt.json'}: field 'subcategory': must be a string, not list"
    )


def test_export_of_responses_into_a_folder_is_named(cli, replay_run, tmp_path) -> None:
    api.judge(replay_run, ["rules"])
    code, _, err = invoke(cli, "score", str(replay_run), "--export", str(tmp_path), "--boot", "0")
    assert (
        code == 2
        and err.strip() == f"error: {tmp_path}: field '--export': is a folder; name a file for --export"
    )


def test_a_pipe_given_as_a_csv_is_refused_unread(cli, tmp_path) -> None:
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    code, _, err = invoke(cli, "correlate", str(fifo))  # reading it would block forever
    assert code == 2 and err.strip() == f"error: {fifo}: is not a regular file"
