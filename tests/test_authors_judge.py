"""The authors' judge on demand: their template format imported, routed, rendered, sent and read as
their judging script (``llm_judge_pipeline_gpt5pro_shard.py``) does.

The template files here are written by the test in the authors' format (file names, ``system_prompt``,
``template``, ``jinja_args``, the variables their script passes); their text is not in this repository.
``expected_requests`` is the test's reading of what their script sends for one data folder, written from
its ``evaluate_model_dir`` / ``evaluate_reasoning_mmlu`` branches, independently of gapeval's route table.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from tests.conftest import invoke

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.judges.authors import find_slot
from gapeval.judges.rubric import ImageSlot, load_rubric_dir, parse_authors_verdict
from gapeval.records import VerdictStatus
from gapeval.store import RunStore
from gapeval.suites import load_suite
from gapeval.suites.sample import SAMPLE_MODEL, draw, write_sample_tree
from gapeval.testing.openai_server import Reply, ScriptedServer

KEY = "sk-authors-test-key"
Q, R, A, G = (f"see attached {w} image" for w in ("question", "reference", "answer", "generated"))

#: Template file -> the variables their script passes to it (read from the script, per branch).
THEIR_VARIABLES: dict[str, list[str]] = {
    "counting_text_animal_eval.yaml": ["task_reference", "generated_text"],
    "counting_text_object_eval.yaml": ["task_reference", "generated_text"],
    "counting_image_animal_eval.yaml": ["task_reference", "generated_image", "reference_answer_image"],
    "counting_image_object_eval.yaml": ["task_reference", "generated_image", "reference_answer_image"],
    "draw_reasoning_text_eval.yaml": ["question_image", "task_text", "reference_answer_image",
                                      "generated_text"],
    "draw_reasoning_image_eval.yaml": ["question_image", "task_text", "reference_answer_image",
                                       "answer_image"],
    "mmmu_mmlu_reasoning_choice_text_eval.yaml": ["question_image", "correct_option", "generated_answer"],
    # this one asks for the reference image too (their script then attaches it); the puzzle one does not
    "mmmu_mmlureasoning_choice_image_eval.yaml": ["question_image", "correct_option", "answer_image",
                                                  "reference_answer_image"],
    "mmmu_mmlu_reasoning_image_text_balance.yaml": ["question_image", "generated_text", "answer_image"],
    "reasoning_choice_text_eval.yaml": ["question_image", "correct_option", "generated_answer"],
    "reasoning_choice_image_eval.yaml": ["question_image", "correct_option", "answer_image"],
    # reasoning_image_text_balance.yaml: named by their script, absent from their repository (so here)
    "multi_hop_text_eval.yaml": ["reference_image", "reference_text", "generated_text"],
    "multi_hop_image_eval.yaml": ["reference_image", "reference_caption", "generated_image"],
    "physics_text_eval.yaml": ["problem", "reference_answer", "generated_text"],
    "physics_image_eval.yaml": ["problem_text", "reference_text"],
    "rule_based_text_eval.yaml": ["rule", "reference_text", "generated_text"],
    "rule_based_image_eval.yaml": ["original_image", "rule", "reference_image", "generated_image"],
}  # fmt: skip


def write_their_repo(root: Path, drop: tuple[str, ...] = ()) -> Path:
    """A checkout in the authors' layout with template files of the test's own words."""
    folder = root / "utils" / "prompt_templates"
    folder.mkdir(parents=True)
    for name, args in THEIR_VARIABLES.items():
        if name in drop:
            continue
        lines = "\n".join(f"{a.replace('_', ' ')}: {{{{ {a} }}}}" for a in args)
        body = {
            "system_prompt": f"You are the test grader for {name[:-5]}.",
            # a trailing newline: their renderer (Jinja's defaults) drops it
            "template": f"Grade this ({name}).\n{lines}\nReply as JSON with a score of 1 or 0.\n",
            "jinja_args": args,
            "return_json": True,
        }
        (folder / name).write_text(yaml.safe_dump(body, sort_keys=False))
    # their script's routing names (the importer checks it knows every one)
    names = sorted({*THEIR_VARIABLES, "reasoning_image_text_balance.yaml"})
    (root / "llm_judge_pipeline_gpt5pro_shard.py").write_text(f"TEMPLATES = {names!r}\n")
    return root


def add_items(root: Path) -> None:
    """Items in layouts the sample tree lacks, so that every route of their script is taken.

    Multiple choice with the question image in ``image/`` (one text right, one wrong: both branches of
    their flow), a puzzle answered right (its choice-image template), a rule item with ``image/`` and
    ``ref/`` (their rule image template), and physics whose images are found only through the record's
    ``img`` and ``expect_image`` keys (their fallbacks).
    """
    grid = draw([("square", "red", 20, 48), ("circle", "red", 48, 48), ("triangle", "red", 76, 48)])
    marked = draw([("circle", "blue", 48, 48)])

    def item(n: int, prompt: dict[str, Any], images: dict[str, Image.Image], text: str, out: str) -> None:
        folder = root / f"data_{n}"
        folder.mkdir(parents=True)
        (folder / "prompt.json").write_text(json.dumps(prompt))
        for rel, img in images.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            img.save(folder / rel)
        model = folder / SAMPLE_MODEL
        model.mkdir()
        (model / "text.json").write_text(json.dumps({"output_text": text}))
        grid.convert("RGB").save(model / out, quality=90)  # a JPEG output is typed by its suffix

    for n, text in ((13, "Answer: (B)"), (14, "WRONG: the answer is (A)")):
        item(n, {"id": f"mc-{n}", "category": "reasoning", "subcategory": "mmlu/mmmu",
                 "und_prompt": "Which one is the circle? (A) left (B) middle (C) right",
                 "gen_prompt": "Mark the circle.", "reference": "B"},
             {"image/q.png": grid, "ref/answer.png": marked}, text, "out.jpg")  # fmt: skip
    item(15, {"id": "pz-2", "category": "reasoning", "subcategory": "puzzle", "und_prompt": "Which is round?",
              "gen_prompt": "Mark the round one.", "reference": "B"},
         {"image/p.png": grid}, "Answer: B", "mark.png")  # fmt: skip
    item(16, {"id": "rule-9", "category": "rule_based", "subcategory": "recolour",
              "und_prompt": "If red turned blue, what colour is the circle?", "gen_prompt": "Turn red blue.",
              "reference": ["blue"]},
         {"image/in.png": grid, "ref/out.png": marked}, "blue", "edit.png")  # fmt: skip
    item(17, {"id": "ph-9", "category": "physics", "subcategory": "fall", "problem": "Where does it land?",
              "gen_prompt": "Show where it lands.", "reference": "on the ground", "img": "start.png",
              "expect_image": "end.png"},
         {"start.png": grid, "end.png": marked}, "On the ground.", "land.jpeg")  # fmt: skip


# -- what their script sends, as read ----------------------------------------------------------------
def _url(path: Path) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _first_image(folder: Path, subs: tuple[str, ...]) -> Path | None:
    for sub in subs:
        d = folder / sub
        if d.is_dir():
            found = sorted(p for p in d.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
            if found:
                return found[0]
    return None


def _messages(templates: Path, name: str, variables: dict[str, str], images: list[Path | None]) -> list[Any]:
    data = yaml.safe_load((templates / name).read_text())
    from jinja2 import Environment, StrictUndefined

    text = Environment(undefined=StrictUndefined).from_string(data["template"]).render(**variables)
    user: Any = text
    if images:
        user = [{"type": "text", "text": text}] + [
            {"type": "image_url", "image_url": {"url": _url(p)}} for p in images if p
        ]
    return [{"role": "system", "content": data["system_prompt"]}, {"role": "user", "content": user}]


def text_turns(messages: list[Any], model: str, reply: dict[str, Any]) -> list[dict[str, Any]]:
    """Their text call: two requests, the second carrying the first reply's content and reasoning."""
    first = {"model": model, "messages": messages, "reasoning": {"enabled": True}, "max_tokens": 99999}
    said = {
        "role": "assistant",
        "content": reply["content"],
        "reasoning_details": reply.get("reasoning_details"),
    }
    follow = [*messages, said, {"role": "user", "content": "Are you sure? Think carefully."}]
    return [first, {**first, "messages": follow}]


def expected_requests(folder: Path, templates: Path, model: str, reply_for) -> list[dict[str, Any]]:
    """Every chat request their script sends for one data folder and the model folder SAMPLE_MODEL."""
    rec = json.loads((folder / "prompt.json").read_text())
    rec = rec[0] if isinstance(rec, list) else rec
    cat, sub = rec.get("category"), rec.get("subcategory")
    ref = rec.get("reference")
    ref_text = "\n".join(map(str, ref)) if isinstance(ref, list) else "" if ref is None else str(ref)
    problem_text, gen_prompt = rec.get("und_prompt") or rec.get("problem"), rec.get("gen_prompt")
    problem = ref_any = ref_only = None
    if cat in ("rule_based", "reasoning"):
        problem, ref_only = _first_image(folder, ("image", "inage")), _first_image(folder, ("ref",))
    elif cat == "physics":
        problem = _first_image(folder, ("image", "inage"))
        if problem is None and rec.get("img") and (folder / rec["img"]).exists():
            problem = folder / rec["img"]
        ref_any = _first_image(folder, ("ref", "image", "inage"))
        if ref_any is None and rec.get("expect_image") and (folder / rec["expect_image"]).exists():
            ref_any = folder / rec["expect_image"]
    else:
        ref_any = _first_image(folder, ("ref", "image", "inage"))
    mdir = folder / SAMPLE_MODEL
    text = (
        json.loads((mdir / "text.json").read_text())["output_text"] if (mdir / "text.json").exists() else None
    )
    outputs = sorted(p for p in mdir.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    image_call = {"model": model, "max_tokens": 99999}
    sent: list[dict[str, Any]] = []

    def text_call(name: str, variables: dict[str, str], images: list[Path | None]) -> bool:
        msgs = _messages(templates, name, variables, images)
        first = reply_for(msgs)
        turns = text_turns(msgs, model, first)
        sent.extend(turns)
        return parse_authors_verdict(reply_for(turns[1]["messages"])["content"])[0]

    if cat == "reasoning" and sub in ("mmlu/mmmu", "puzzle"):
        names = {"mmlu/mmmu": ("mmmu_mmlu_reasoning_choice_text_eval.yaml",
                               "mmmu_mmlureasoning_choice_image_eval.yaml",
                               "mmmu_mmlu_reasoning_image_text_balance.yaml"),
                 "puzzle": ("reasoning_choice_text_eval.yaml", "reasoning_choice_image_eval.yaml",
                            "reasoning_image_text_balance.yaml")}[sub]  # fmt: skip
        if problem is None or not ref_text:
            return sent  # their branch raises before any call
        ok = None
        if text is not None:
            answer = {"question_image": Q, "correct_option": ref_text, "generated_answer": text}
            ok = text_call(names[0], answer,
                           [problem])  # fmt: skip
        for out in outputs:
            if text is None or ok:
                args = THEIR_VARIABLES[names[1]]
                variables = {"question_image": Q, "correct_option": ref_text, "answer_image": A}
                images = [problem, out]
                if "reference_answer_image" in args:
                    if ref_only is None:
                        continue
                    variables["reference_answer_image"] = R
                    images = [problem, ref_only, out]
                sent.append({**image_call, "messages": _messages(templates, names[1], variables, images)})
            elif (templates / names[2]).exists():
                variables = {"question_image": Q, "generated_text": text, "answer_image": A}
                sent.append(
                    {**image_call, "messages": _messages(templates, names[2], variables, [problem, out])}
                )
        return sent
    if cat == "reasoning" and sub != "draw":
        return sent  # no template for it: their script stops on "Unsupported category"
    kind = "animal" if sub == "Animals Counting" else "object"
    if text is not None:
        label = R if ref_any else "no reference image"
        call = {
            "counting": (f"counting_text_{kind}_eval.yaml",
                         {"task_reference": ref_text, "generated_text": text}, []),
            "Multi Hop": ("multi_hop_text_eval.yaml", {"reference_image": label, "reference_text": ref_text,
                                                       "generated_text": text}, [ref_any] if ref_any else []),
            "physics": ("physics_text_eval.yaml", {"problem": problem_text, "reference_answer": ref_text,
                                                   "generated_text": text}, []) if problem_text else None,
            "rule_based": ("rule_based_text_eval.yaml", {"rule": problem_text, "reference_text": ref_text,
                                                         "generated_text": text}, [])
            if problem_text else None,
            "reasoning": ("draw_reasoning_text_eval.yaml", {"question_image": Q, "task_text": problem_text,
                          "reference_answer_image": R, "generated_text": text}, [problem, ref_only])
            if problem and ref_only and problem_text else None,
        }.get(cat)  # fmt: skip
        if call:
            text_call(*call)
    for out in outputs:
        label = R if ref_any else "no reference image"
        call = {
            "counting": (f"counting_image_{kind}_eval.yaml", {"task_reference": ref_text,
                         "generated_image": G,
                         "reference_answer_image": R}, [out, ref_any]) if ref_any else None,
            "Multi Hop": ("multi_hop_image_eval.yaml", {"reference_image": label, "generated_image": G,
                                                        "reference_caption": ref_text}, [ref_any, out]),
            "physics": ("physics_image_eval.yaml", {"problem_text": problem_text, "reference_text": ref_text},
                        [problem, ref_any, out]) if problem_text else None,
            "rule_based": ("rule_based_image_eval.yaml", {"original_image": "see attached original image",
                           "rule": gen_prompt, "reference_image": R, "generated_image": G},
                           [problem, ref_only, out]) if gen_prompt and problem and ref_only else None,
            "reasoning": ("draw_reasoning_image_eval.yaml", {"question_image": Q, "task_text": problem_text,
                          "reference_answer_image": R, "answer_image": A}, [problem, ref_only, out])
            if problem and ref_only and problem_text else None,
        }.get(cat)  # fmt: skip
        if call:
            sent.append({**image_call, "messages": _messages(templates, *call)})
    return sent


# -- the scripted judge endpoint ---------------------------------------------------------------------
def reply_for(messages: list[Any]) -> dict[str, Any]:
    """The assistant message the server sends: text verdicts fail a marked answer; reasoning comes back."""
    user = messages[1]["content"]
    text = user if isinstance(user, str) else user[0]["text"]
    score = 0 if ("WRONG" in text or "Final answer: A" in text) else 1
    turn = len(messages)
    return {"role": "assistant", "content": f'Verdict follows. {{"reason": "turn {turn}", "score": {score}}}',
            "reasoning_details": [{"type": "reasoning.text", "text": f"thought {turn}"}]}  # fmt: skip


def script(body: dict[str, Any], n: int) -> Reply:
    message = reply_for(body["messages"])
    usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    return Reply(
        payload={
            "id": f"c{n}",
            "object": "chat.completion",
            "model": body["model"],
            "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        }
    )


def canonical(bodies: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps({k: v for k, v in b.items() if k != "_path"}, sort_keys=True) for b in bodies)


@pytest.fixture
def authors(tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """(their checkout, the imported rubric directory, the data tree with a replayed model)."""
    monkeypatch.setenv("GAPEVAL_TEST_KEY", KEY)
    repo = write_their_repo(tmp_path / "GapEval", drop=())
    data = write_sample_tree(tmp_path / "data")
    add_items(data)
    rubrics = tmp_path / "authors-rubrics"
    report = api.import_authors_rubrics(repo, rubrics)
    assert report.missing == ["reasoning_image_text_balance.yaml"]
    return repo, rubrics, data


def test_the_requests_are_the_ones_their_script_sends(authors, tmp_path) -> None:
    repo, rubrics, data = authors
    run = tmp_path / "run"
    api.run(str(data), f"replay:{SAMPLE_MODEL}", out=run, judges=(), samples_gen=2)
    templates = repo / "utils" / "prompt_templates"
    with ScriptedServer(script) as srv:
        stats = api.judge(run, ["openai:gpt-5-mini"], options={
            "base_url": srv.base_url, "api_key_env": "GAPEVAL_TEST_KEY", "protocol": "paper",
            "samples": "1", "rubrics": str(rubrics)})  # fmt: skip
    folders = sorted(p for p in data.iterdir() if p.name.startswith("data_"))
    expected = [r for f in folders for r in expected_requests(f, templates, "gpt-5-mini", reply_for)]
    assert canonical(srv.requests) == canonical(expected)
    # every route their script has and this tree reaches was taken (so the comparison is not vacuous)
    systems = {b["messages"][0]["content"].split("for ")[1][:-1] for b in srv.requests}
    assert systems == {name[:-5] for name in THEIR_VARIABLES}
    (judge_id,) = stats
    with RunStore.open(run) as store:
        verdicts = {(v.item_id, v.direction, v.sample): v for v in store.verdicts() if v.judge_id == judge_id}
    # their multiple-choice flow: a text answer judged wrong sends the image to the consistency check
    assert verdicts[("mc-14", "gen", 0)].meta["rubric"] == "authors-mmlu-balance"
    assert verdicts[("mc-13", "gen", 0)].meta["rubric"] == "authors-mmlu-gen"
    assert verdicts[("mc-14", "und", 0)].passed is False and verdicts[("mc-13", "und", 0)].passed is True
    # where their script refuses an item, gapeval abstains and says why
    assert "needs problem" in verdicts[("rs-1", "und", 0)].reason  # question image given by a key only
    # rs-2's text was judged wrong and their puzzle balance template is missing: not judged
    assert verdicts[("rs-2", "gen", 0)].status is VerdictStatus.ABSTAIN
    assert "no balance rubric" in verdicts[("rs-2", "gen", 0)].reason
    assert judge_id.startswith("openai:gpt-5-mini[two_turn=text,rubrics=authors-rubrics:")


def test_paper_protocol_asks_ten_times_and_a_second_judging_asks_nothing(authors, tmp_path) -> None:
    _, rubrics, data = authors
    run = tmp_path / "run"
    api.run(str(data), f"replay:{SAMPLE_MODEL}", out=run, judges=())
    opts = {"api_key_env": "GAPEVAL_TEST_KEY", "protocol": "paper", "rubrics": str(rubrics)}
    with ScriptedServer(script) as srv:
        api.judge(run, ["openai:gpt-5-mini"], options={**opts, "base_url": srv.base_url})
        once = canonical(srv.requests)
        api.judge(run, ["openai:gpt-5-mini"], options={**opts, "base_url": srv.base_url})
        assert canonical(srv.requests) == once  # all cached
    distinct = set(once)
    # each distinct request ten times, except the text verdict the gate shares (asked once more by none)
    assert all(once.count(r) == 10 for r in distinct)


def test_their_reply_reading() -> None:
    assert parse_authors_verdict('{"score": 1}')[0] is True
    assert parse_authors_verdict('text {"judge_result": "yes"} more')[0] is True
    assert parse_authors_verdict('{"judeg_result": true}')[0] is True
    assert parse_authors_verdict('{"score": null, "judge_result": 1}')[0] is True
    assert parse_authors_verdict('{"score": 2}')[0] is False
    assert parse_authors_verdict('{"score": "pass"}')[0] is False  # not one of their positive words
    assert parse_authors_verdict("I think it passes.") == (
        False, "reply is not JSON (the authors' script counts it as a failure)", "raw")  # fmt: skip
    assert parse_authors_verdict('{"reason": "no verdict key"}')[2] == "raw"


def test_the_import_keeps_their_text_and_routes(authors) -> None:
    repo, rubrics, _ = authors
    loaded = {r.id: r for r in load_rubric_dir(rubrics)}
    assert len(loaded) == len(THEIR_VARIABLES)
    src = yaml.safe_load((repo / "utils/prompt_templates/physics_image_eval.yaml").read_text())
    mine = loaded["authors-physics-gen"]
    assert (mine.system, mine.template) == (src["system_prompt"], src["template"])
    assert loaded["authors-counting-animal-und"].subcategories == ("animals counting",)
    assert "reference" in loaded["authors-mmlu-gen"].requires  # their template asks for the reference
    assert "reference" not in loaded["authors-puzzle-gen"].requires
    manifest = json.loads((rubrics / "authors-import.json").read_text())
    assert manifest["missing"] == ["reasoning_image_text_balance.yaml"] and len(manifest["templates"]) == 17


def test_import_from_the_command_line_and_bad_input(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    repo = write_their_repo(tmp_path / "GapEval")
    code, out, err = invoke(cli, "rubrics", "import-authors", "GapEval")
    assert code == 0, out + err
    assert "wrote 17 rubrics to authors-rubrics" in (out + err)
    assert "reasoning_image_text_balance.yaml" in (out + err)
    assert len(list((tmp_path / "authors-rubrics").glob("authors-*.yaml"))) == 17
    # not their checkout
    (tmp_path / "elsewhere").mkdir()
    code, out, err = invoke(cli, "rubrics", "import-authors", "elsewhere", "-o", "x")
    assert code == 2 and "elsewhere" in (out + err) and "utils/prompt_templates" in (out + err)
    assert not (tmp_path / "x").exists()
    # their script routes to a template the importer does not know
    (repo / "llm_judge_pipeline_gpt5pro_shard.py").write_text("X = 'new_route_eval.yaml'\n")
    code, out, err = invoke(cli, "rubrics", "import-authors", "GapEval", "-o", "y")
    assert code == 2 and "new_route_eval.yaml" in (out + err) and not (tmp_path / "y").exists()
    (repo / "llm_judge_pipeline_gpt5pro_shard.py").unlink()
    # a template asking for a variable their script does not pass
    bad = repo / "utils/prompt_templates/physics_text_eval.yaml"
    bad.write_text(
        yaml.safe_dump({"system_prompt": "s", "template": "{{ solution }}", "jinja_args": ["solution"]})
    )
    code, out, err = invoke(cli, "rubrics", "import-authors", "GapEval", "-o", "z")
    assert code == 2 and "physics_text_eval.yaml" in (out + err) and "solution" in (out + err)
    assert not (tmp_path / "z").exists()
    # a folder of one's own is never overwritten
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    bad.write_text(
        yaml.safe_dump({"system_prompt": "s", "template": "{{ problem }}", "jinja_args": ["problem"]})
    )
    code, out, err = invoke(cli, "rubrics", "import-authors", "GapEval", "-o", "mine")
    assert code == 2 and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert len(err.strip().splitlines()) == 1


def test_a_rubric_directory_of_ones_own_is_checked(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    data = write_sample_tree(tmp_path / "data")
    api.run(str(data), f"replay:{SAMPLE_MODEL}", out=tmp_path / "run", judges=())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "x.yaml").write_text(
        "id: x\nversion: 1\napplies_to: {categories: [counting], direction: und}\nsystem: s\n"
        "template: '{{ nonsense }}'\n"
    )
    code, out, err = invoke(
        cli, "judge", "run", "-j", "openai:m", "--rubrics", "mine", "--api-key-env", "GAPEVAL_TEST_KEY"
    )
    assert code == 2 and "x.yaml" in (out + err) and "template" in (out + err)
    code, out, err = invoke(
        cli, "judge", "run", "-j", "openai:m", "--rubrics", "nowhere", "--api-key-env", "GAPEVAL_TEST_KEY"
    )
    assert code == 2 and "nowhere" in (out + err)


def test_images_outside_the_item_folder_are_never_sent(authors, tmp_path) -> None:
    _, rubrics, data = authors
    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), (1, 2, 3)).save(secret)
    item = next(i for i in load_suite(str(data)).items if i.id == "ph-2")
    folder = data / "data_11"
    (folder / "image" / "q.png").unlink()
    problem = next(s for s in load_rubric_dir(rubrics) if s.id == "authors-physics-gen").images[0]
    assert isinstance(problem, ImageSlot) and problem.lookup[-1] == "record:img"
    # the loader refuses such paths; a record that names one anyway, or a link, is not followed out
    hostile = item.model_copy(update={"raw": {**item.raw, "img": str(secret)}})
    assert find_slot(problem, hostile, folder, {}) is None
    (folder / "image" / "q.png").symlink_to(secret)
    assert find_slot(problem, item, folder, {}) is None
    (folder / "image" / "q.png").unlink()
    Image.new("RGB", (4, 4)).save(folder / "inside.png")
    inside = item.model_copy(update={"raw": {**item.raw, "img": "inside.png"}})
    assert find_slot(problem, inside, folder, {}) == str(folder / "inside.png")


def test_bad_rubric_fields_name_the_file_and_field(tmp_path) -> None:
    (tmp_path / "r.yaml").write_text(
        "id: r\nversion: 1\napplies_to: {categories: [counting], direction: gen}\nsystem: s\n"
        "template: '{{ a }}'\nvariables: {a: 'output_raw'}\nrequires: [nothing]\n"
    )
    with pytest.raises(GapevalError) as exc:
        load_rubric_dir(tmp_path)
    assert exc.value.field == "requires" and "r.yaml" in str(exc.value.file)


def test_the_recording_endpoint_for_comparing_two_harnesses(authors, tmp_path) -> None:
    """`python -m gapeval.testing.openai_server --record FILE`: what a reviewer points both harnesses at."""
    import socket
    import subprocess
    import sys

    repo, rubrics, data = authors
    run = tmp_path / "run"
    api.run(str(data), f"replay:{SAMPLE_MODEL}", out=run, judges=(), samples_gen=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record = tmp_path / "requests.jsonl"
    server = subprocess.Popen(
        [sys.executable, "-m", "gapeval.testing.openai_server", "--port", str(port), "--record", str(record)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert "recording to" in (server.stdout.readline() if server.stdout else "")
        api.judge(run, ["openai:gpt-5-mini"], options={
            "base_url": f"http://127.0.0.1:{port}/v1", "api_key_env": "GAPEVAL_TEST_KEY", "protocol": "paper",
            "samples": "1", "rubrics": str(rubrics)})  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=10)
    sent = [json.loads(line) for line in record.read_text().splitlines()]
    templates = repo / "utils" / "prompt_templates"
    folders = sorted(p for p in data.iterdir() if p.name.startswith("data_"))
    passing = lambda messages: {"content": '{"reason": "recorded", "score": 1}'}  # noqa: E731
    expected = [r for f in folders for r in expected_requests(f, templates, "gpt-5-mini", passing)]
    assert canonical(sent) == canonical(expected)
