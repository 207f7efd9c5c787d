"""The OpenAI-compatible model adapter against a real loopback server, in every reply shape."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from tests.conftest import TEST_KEY

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.models.openai_api import image_in
from gapeval.openai_client import Retryable
from gapeval.records import OutputStatus
from gapeval.store import RunStore
from gapeval.testing.openai_server import Reply, ScriptedServer, chaos_reply


def b64_png(colour: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def images_api(body: dict[str, object], n: int) -> Reply:
    path = str(body["_path"])
    if path.endswith("/images/generations"):
        return Reply(payload={"created": 0, "data": [{"b64_json": b64_png("blue")}]})
    if path.endswith("/images/edits"):
        return Reply(payload={"created": 0, "data": [{"b64_json": b64_png("red")}]})
    return Reply(content="There are 2 red circles.")


def opts(srv: ScriptedServer, **extra: str) -> dict[str, str]:
    return {"base_url": srv.base_url, "api_key_env": "GAPEVAL_TEST_KEY", "backoff_s": "0.01", **extra}


@pytest.fixture(autouse=True)
def key(monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)


def test_understanding_generation_and_edits_through_the_images_api(sample_tree, tmp_path) -> None:
    out = tmp_path / "run"
    with ScriptedServer(images_api) as srv:
        res = api.run(str(sample_tree), "openai:test-image-model", out=out, judges=["rules"],
                      model_options=opts(srv))  # fmt: skip
    paths = [str(b["_path"]) for b in srv.requests]
    suite = {i.id: i for i in res.suite.items}
    n_edit = sum(1 for i in suite.values() if i.gen.is_edit)
    assert paths.count("/v1/chat/completions") == 12 and paths.count("/v1/images/edits") == n_edit
    assert paths.count("/v1/images/generations") == 12 - n_edit
    # an edit sends the question image and the prompt as multipart form fields
    edits = [b for b in srv.requests if str(b["_path"]).endswith("/edits")]
    assert all('name="prompt"' in str(b["_multipart"]) and "\x89PNG" in str(b["_multipart"]) for b in edits)
    # understanding carries the question image as a data URL, and the request's own seed
    chats = [b for b in srv.requests if str(b["_path"]).endswith("/chat/completions")]
    assert all(isinstance(b["seed"], int) for b in chats)
    assert any(p["type"] == "image_url" for b in chats for p in b["messages"][0]["content"])
    with RunStore.open(out) as store:
        outs = store.outputs()
        for o in outs:
            if o.direction == "gen" and o.status is OutputStatus.DONE:
                with Image.open(store.image_path(o.image_sha or "")) as img:
                    want = (255, 0, 0) if suite[o.item_id].gen.is_edit else (0, 0, 255)
                    assert img.getpixel((0, 0)) == want
        m = store.manifest()
    assert res.stats.done == 24 and res.stats.failed == 0
    assert m.spec.model_identity["endpoint"] == srv.base_url.split("//")[1]
    assert not any(TEST_KEY in p.read_text(errors="ignore") for p in out.rglob("*") if p.is_file())


GREEN = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + b64_png("green")}}


@pytest.mark.parametrize(
    "reply",
    [
        {
            "choices": [
                {"message": {"role": "assistant", "content": [{"type": "text", "text": "here"}, GREEN]}}
            ]
        },
        {"choices": [{"message": {"role": "assistant", "content": "here", "images": [GREEN]}}]},
    ],
    ids=["vllm-omni-content-parts", "openrouter-message-images"],
)
def test_images_returned_by_chat_completions_parse_in_both_shapes(sample_tree, tmp_path, reply) -> None:
    out = tmp_path / "run"
    with ScriptedServer(lambda b, n: Reply(payload=reply)) as srv:
        res = api.run(str(sample_tree), "openai:test-chat-image", out=out, judges=(),
                      model_options=opts(srv, generation="chat"), samples_gen=1)  # fmt: skip
    gen = [b for b in srv.requests if b.get("modalities") == ["image", "text"]]
    assert len(gen) == 12
    with RunStore.open(out) as store:
        images = [o for o in store.outputs(OutputStatus.DONE) if o.direction == "gen"]
        assert len(images) == 12
        with Image.open(store.image_path(images[0].image_sha or "")) as img:
            assert img.getpixel((0, 0)) == (0, 128, 0)
    # the same replies answer the questions too: their text parts are the answer
    assert res.stats.failed == 0 and res.stats.done == 24


def test_a_reply_with_no_image_fails_that_request_alone_with_the_reason(sample_tree, tmp_path) -> None:
    def script(body: dict[str, object], n: int) -> Reply:
        if str(body["_path"]).endswith("/images/generations"):
            return chaos_reply("html")
        if str(body["_path"]).endswith("/images/edits"):
            return Reply(payload={"data": [{"url": "https://example.invalid/x.png"}]})
        return Reply(content="2")

    out = tmp_path / "run"
    with ScriptedServer(script) as srv:
        res = api.run(str(sample_tree), "openai:test-image-model", out=out, judges=(),
                      model_options=opts(srv, max_attempts="2"))  # fmt: skip
    with RunStore.open(out) as store:
        failed = store.outputs(OutputStatus.FAILED)
    assert res.stats.done == 12 and len(failed) == 12 and {o.direction for o in failed} == {"gen"}
    assert all("gave up after 2 attempts" in (o.error or "") for o in failed)
    assert any("holds no b64_json image" in (o.error or "") for o in failed)


@pytest.mark.parametrize(
    "reply",
    [
        {"data": []},
        {"choices": [{"message": {"content": "no image here"}}]},
        "not even json",
        {"data": [{"b64_json": "!!"}]},
    ],
)
def test_image_in_refuses_replies_without_a_usable_image(reply) -> None:
    with pytest.raises(Retryable):
        image_in(reply)


def test_options_and_the_key_are_checked_before_any_work(sample_tree, tmp_path, monkeypatch) -> None:
    with pytest.raises(GapevalError, match="unknown option 'temprature'"):
        api.run(str(sample_tree), "openai:m", out=tmp_path / "a", model_options={"temprature": "1"})
    monkeypatch.delenv("GAPEVAL_TEST_KEY")
    with pytest.raises(GapevalError, match="GAPEVAL_TEST_KEY"):
        api.run(str(sample_tree), "openai:m", out=tmp_path / "b", judges=["rules"],
                model_options={"api_key_env": "GAPEVAL_TEST_KEY"})  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
