"""The surfaces that take data from someone else hold: bundles, the model server and its client, spec files,
and the OpenAI-compatible paths (a wrong address fails at once, the endpoint in use is always named)."""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import sqlite3
import struct
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image
from tests.conftest import TEST_KEY, invoke, run_replay

from gapeval import api
from gapeval.errors import GapevalError
from gapeval.serve import template_server
from gapeval.serve.server import ModelServer
from gapeval.store import RunStore
from gapeval.sweep import load_sweep
from gapeval.testing.openai_server import Reply, ScriptedServer

SLOW = Path(__file__).with_name("slow_model.py")


# -- bundles ----------------------------------------------------------------------------------------------


@pytest.fixture
def bundle(cli, sample_tree, tmp_path, monkeypatch) -> Path:
    """A judged run of the sample tree, exported; the dataset and the run are gone."""
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    run = tmp_path / "run"
    code, _, err = run_replay(cli, sample_tree, run, "--no-html")
    assert code == 0, err
    path = tmp_path / "share" / "run.gapeval"
    assert invoke(cli, "export", str(run), "-o", str(path))[0] == 0
    shutil.rmtree(run)
    shutil.rmtree(sample_tree)
    return path


def rewrite(bundle: Path, change: Callable[[Path], None]) -> None:
    """Unpack ``bundle``, let ``change`` edit the files, and pack it again (as someone else would)."""
    work = bundle.with_name("edit")
    shutil.rmtree(work, ignore_errors=True)
    with zipfile.ZipFile(bundle) as z:
        z.extractall(work)
    change(work)
    bundle.unlink()
    with zipfile.ZipFile(bundle, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for p in sorted(work.rglob("*")):
            if p.is_file():
                z.write(p, p.relative_to(work).as_posix())
    shutil.rmtree(work)
    shutil.rmtree(bundle.with_name(bundle.name + ".d"), ignore_errors=True)


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def one_line_error(code: int, err: str) -> str:
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_an_image_sha_that_climbs_out_is_refused_and_nothing_is_written_outside(
    cli, bundle, tmp_path
) -> None:
    target = tmp_path / "outside"
    target.mkdir()
    Image.new("RGB", (8, 8), "red").save(target / "x.png")

    def climb(work: Path) -> None:
        con = sqlite3.connect(work / "run" / "run.sqlite")
        con.execute("UPDATE outputs SET image_sha = '../../../outside/x' WHERE direction = 'gen'")
        con.commit()
        con.close()

    rewrite(bundle, climb)
    before = files_under(tmp_path) - files_under(bundle.with_name("run.gapeval.d"))
    for command in (
        ["report", str(bundle), "--fragility", "0", "--boot", "0"],
        ["judge", str(bundle), "-j", "rules"],
    ):
        line = one_line_error(*invoke(cli, *command)[::2])
        assert "field 'outputs.image_sha': not a SHA-256: '../../../outside/x'" in line
    after = files_under(tmp_path) - files_under(bundle.with_name("run.gapeval.d"))
    assert after == before


@pytest.mark.parametrize(
    ("sha", "says"),
    [("../../../secret.png", "not a SHA-256"), ("ab" * 32, "names an image the bundle does not hold")],
)
def test_a_suite_image_reference_is_checked_before_any_judge_sees_it(
    cli, bundle, tmp_path, sha, says
) -> None:
    (tmp_path / "secret.png").write_bytes(b"private")

    def point(work: Path) -> None:
        snap = json.loads((work / "suite.json").read_text())
        snap["items"][0]["und"]["images"][0]["sha256"] = sha
        (work / "suite.json").write_text(json.dumps(snap))

    rewrite(bundle, point)
    with ScriptedServer() as srv:
        code, _, err = invoke(
            cli,
            "judge",
            str(bundle),
            "-j",
            "openai:test-vlm",
            "--base-url",
            srv.base_url,
            "--api-key-env",
            "GAPEVAL_TEST_KEY",
        )
        asked = list(srv.requests)
    line = one_line_error(code, err)
    assert f"{bundle}: suite.json: field 'items[0].und.images[0].sha256': {says}" in line
    assert asked == []


@pytest.mark.parametrize("where", ["run/images", "suite_images"])
def test_an_image_whose_bytes_do_not_match_its_hash_is_refused(cli, bundle, where) -> None:
    def swap(work: Path) -> None:
        victim = next(p for p in sorted((work / where).rglob("*")) if p.is_file())
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), "black").save(buf, format="PNG")
        victim.write_bytes(buf.getvalue())

    rewrite(bundle, swap)
    line = one_line_error(*invoke(cli, "score", str(bundle), "--fragility", "0", "--boot", "0")[::2])
    assert line.startswith(f"error: {bundle}: field '{where}/") and "does not hold the bytes" in line
    assert not bundle.with_name("run.gapeval.d").exists()


def test_extraction_caps_the_ratio_and_the_total(cli, bundle, monkeypatch) -> None:
    rewrite(bundle, lambda work: (work / "run" / "padding.bin").write_bytes(bytes(20 * 2**20)))
    line = one_line_error(*invoke(cli, "score", str(bundle))[::2])
    assert "member 'run/padding.bin' inflates to 20971520 bytes" in line
    rewrite(bundle, lambda work: (work / "run" / "padding.bin").unlink())
    monkeypatch.setenv("GAPEVAL_MAX_BUNDLE_BYTES", "1000")
    line = one_line_error(*invoke(cli, "score", str(bundle))[::2])
    assert "over the 1000 allowed (GAPEVAL_MAX_BUNDLE_BYTES)" in line
    assert not bundle.with_name("run.gapeval.d").exists()


def test_a_folder_gapeval_did_not_make_is_never_deleted(cli, bundle) -> None:
    mine = bundle.with_name("run.gapeval.d")
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    line = one_line_error(*invoke(cli, "score", str(bundle))[::2])
    assert (
        line
        == f"error: {mine}: exists and was not made by gapeval; move it away to open the bundle beside it"
    )
    assert (mine / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize(
    ("member", "content", "says"),
    [
        ("bundle.json", "{not json", "field 'bundle.json': not valid JSON"),
        ("bundle.json", '{"format": "gapeval-bundle", "version": "1"}', "version must be a positive integer"),
        ("bundle.json", '{"format": "gapeval-bundle", "version": 2}', "bundle format 2 is newer"),
        ("bundle.json", "[1, 2]", "not a gapeval-bundle file"),
        ("suite.json", "{not json", "suite.json: not valid JSON"),
        ("suite.json", '{"items": 5}', "field 'items': must be an object with a list of items"),
        ("suite.json", '{"items": [{"id": 3}]}', "field 'items[0]."),
    ],
)
def test_a_damaged_bundle_or_suite_json_is_one_line(cli, bundle, member, content, says) -> None:
    rewrite(bundle, lambda work: (work / member).write_text(content))
    # score reads the run; judge also reads the suite's snapshot
    line = one_line_error(*invoke(cli, "judge", str(bundle), "-j", "rules")[::2])
    assert says in line and str(bundle) in line


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("UPDATE outputs SET status = 'weird'", "outputs"),
        ("UPDATE outputs SET meta = '{bad'", "outputs"),
        ("UPDATE verdicts SET direction = 'sideways'", "verdicts"),
        ("UPDATE items SET category = 'Cooking'", "items"),
    ],
)
def test_a_database_row_gapeval_never_writes_is_one_line(cli, bundle, sql, table) -> None:
    def damage(work: Path) -> None:
        con = sqlite3.connect(work / "run" / "run.sqlite")
        con.execute(sql)
        con.commit()
        con.close()

    rewrite(bundle, damage)
    # score and report read every row; judging reads only what it needs (and may finish)
    for command in ("score", "report"):
        line = one_line_error(*invoke(cli, command, str(bundle), "--fragility", "0")[::2])
        assert f"run.sqlite: field '{table}': a row cannot be read (" in line, line


def test_a_suite_snapshot_with_bad_defaults_is_one_line(cli, bundle) -> None:
    def defaults(work: Path) -> None:
        snap = json.loads((work / "suite.json").read_text())
        (work / "suite.json").write_text(json.dumps({**snap, "defaults": {"samples_gen": "x"}}))

    rewrite(bundle, defaults)
    line = one_line_error(*invoke(cli, "judge", str(bundle), "-j", "rules")[::2])
    assert f"{bundle}: suite.json: field 'defaults.samples_gen': " in line


def test_the_report_refuses_oversized_images_before_decoding(cli, bundle, tmp_path, monkeypatch) -> None:
    # Every image is now over the cap: the report is written, showing none of them, without decoding one.
    monkeypatch.setenv("GAPEVAL_MAX_IMAGE_PIXELS", "100")
    code, _out, err = invoke(
        cli, "report", str(bundle), "-o", str(tmp_path / "rep"), "--fragility", "0", "--boot", "0"
    )
    assert code == 0, err
    assert not any((tmp_path / "rep" / "assets").rglob("*.png"))


# -- spec files ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "field", "says"),
    [
        ({"seeds": list(range(101))}, "seeds", "at most 100 items"),
        (
            {"models": [{"model": "toy", "batch_size": 10**11}]},
            "models.0.batch_size",
            "less than or equal to 4096",
        ),
        ({"seeds": [-1]}, "seeds.0", "greater than or equal to 0"),
        ({"seeds": [True]}, "seeds.0", "valid integer"),
        ({"models": [f"toy:{k}" for k in range(60)], "seeds": list(range(20))}, None, "1200 runs"),
    ],
)
def test_sweep_specs_are_bounded(tmp_path, spec, field, says) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"suites": ["shapes-v1-mini"], "models": ["toy"], **spec}))
    with pytest.raises(GapevalError) as exc:
        load_sweep(path)
    assert exc.value.field == field and says in exc.value.message


@pytest.mark.parametrize(("seeds", "field"), [([2**40], "seeds.0"), ([-3], "seeds.0")])
def test_knowledge_seeds_are_bounded(tmp_path, seeds, field) -> None:
    from gapeval.experiments.knowledge import load_spec

    path = tmp_path / "spec.yaml"
    spec = {"experiment": "inject", "facts": [{"name": "brosk", "look": "red triangle"}], "seeds": seeds}
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(GapevalError) as exc:
        load_spec(path, "inject")
    assert exc.value.field == field and str(exc.value.file) == str(path)


def test_a_sweep_takes_model_names_as_strings(tmp_path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("suites: [shapes-v1-mini]\nmodels: [toy, {model: toy, label: again}]\n")
    assert [(m.model, m.label) for m in load_sweep(path).models] == [("toy", ""), ("toy", "again")]


def test_yaml_aliases_are_refused(tmp_path) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text("a: &a [1, 2]\nb: [*a, *a]\nsuites: [x]\nmodels: [toy]\n")
    with pytest.raises(GapevalError, match="aliases"):
        load_sweep(path)


@pytest.mark.parametrize(
    ("model", "says"),
    [("nosuch:x", "knowledge experiments train toy and janus models, not 'nosuch'"),
     ("janus:/no/such/dir", "no such folder"), ("toy:missing.pt", "checkpoint does not exist")],
)  # fmt: skip
def test_a_knowledge_spec_with_an_unusable_model_writes_nothing(
    cli, tmp_path, monkeypatch, model, says
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = {"experiment": "inject", "model": model, "facts": [{"name": "brosk", "look": "red triangle"}]}
    Path("spec.yaml").write_text(yaml.safe_dump(spec))
    line = one_line_error(*invoke(cli, "knowledge", "inject", "spec.yaml")[::2])
    assert "field 'model'" in line and says in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_serve_refuses_a_port_out_of_range(cli) -> None:
    line = one_line_error(*invoke(cli, "serve", "toy", "--port", "99999")[::2])
    assert line == "error: field '--port': port must lie in 0..65535, not 99999"


def test_a_knowledge_spec_whose_data_escapes_writes_nothing(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = {
        "experiment": "inject",
        "facts": [{"name": "brosk", "look": "red triangle"}],
        "data": {"train": "../../etc/passwd"},
    }
    Path("spec.yaml").write_text(yaml.safe_dump(spec))
    line = one_line_error(*invoke(cli, "knowledge", "inject", "spec.yaml", "-o", "out")[::2])
    assert "field 'data.train': path '../../etc/passwd' escapes its folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


# -- the model server ----------------------------------------------------------------------------------------


@contextmanager
def protocol(**kw: Any) -> Iterator[tuple[str, int]]:
    health = {"name": "echo", "capabilities": {}, "batch_size": 2, "identity": {"w": 1}, "description": {}}
    srv = template_server.protocol_server(
        "127.0.0.1",
        0,
        health,
        lambda b: [{"text": "ok"} for _ in b],
        lambda b: [{"image": Image.new("RGB", (4, 4))} for _ in b],
        **kw,
    )
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield "127.0.0.1", srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def raw(address: tuple[str, int], data: bytes, wait: float = 5.0) -> bytes:
    with socket.create_connection(address, timeout=wait) as s:
        s.sendall(data)
        chunks = []
        try:
            while chunk := s.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"content-length: " in b"".join(chunks).lower():
                    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    if len(body) >= length:
                        break
        except TimeoutError:
            pass
        return b"".join(chunks)


def post(path: str, body: bytes, length: str | None = None) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: x\r\ncontent-length: {length or len(body)}\r\n\r\n"
    ).encode() + body


def bomb_png(width: int, height: int) -> str:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return base64.b64encode(bytes(data)).decode()


def test_the_server_refuses_a_negative_length_and_a_decompression_bomb_with_a_reply() -> None:
    with protocol() as address:
        reply = raw(address, post("/v1/understand", b"", length="-5"))
        assert reply.startswith(b"HTTP/1.1 400") and b"non-negative integer" in reply
        body = json.dumps(
            {"requests": [{"item_id": "a", "prompt": "p", "input_image": bomb_png(99999, 99999)}]}
        )
        reply = raw(address, post("/v1/generate", body.encode()))
        assert reply.startswith(b"HTTP/1.1 400") and b"pixel cap" in reply


def test_the_server_refuses_more_requests_than_a_call_may_hold() -> None:
    body = json.dumps({"requests": [{"item_id": "a", "prompt": "p"}] * 4097}).encode()
    with protocol() as address:
        reply = raw(address, post("/v1/understand", body))
    assert reply.startswith(b"HTTP/1.1 400") and b"4097 requests in one call; at most 4096" in reply


def test_a_half_sent_body_is_dropped_and_connections_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(template_server, "IDLE_S", 0.5)
    with protocol(max_connections=2) as address:
        t0 = time.monotonic()
        stalled = raw(address, post("/v1/understand", b'{"req', length="100"), wait=10)
        assert stalled == b"" and time.monotonic() - t0 < 5  # closed by the server, not by our timeout
        held = [socket.create_connection(address) for _ in range(2)]
        try:
            time.sleep(0.1)
            third = raw(address, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert third.startswith(b"HTTP/1.1 503")
        finally:
            for s in held:
                s.close()
        time.sleep(0.7)  # the held connections time out and free their slots
        assert raw(address, b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")


def test_the_template_server_refuses_to_bind_off_the_loopback_without_a_token() -> None:
    answer: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] = lambda b: []  # noqa: E731
    with pytest.raises(ValueError, match="set GAPEVAL_SERVE_TOKEN"):
        template_server.protocol_server("0.0.0.0", 0, {}, answer, answer)
    assert template_server.is_loopback("127.0.0.5") and template_server.is_loopback("::1")
    assert not template_server.is_loopback("10.0.0.1") and not template_server.is_loopback("example.org")
    # the template stands alone (no gapeval import): its copy of the variable's name must match the client's
    from gapeval.models.server_protocol import TOKEN_ENV

    assert template_server.TOKEN_ENV == TOKEN_ENV


def test_off_the_loopback_a_token_is_required_and_sent(sample_tree, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("GAPEVAL_SERVE_TOKEN", raising=False)
    with pytest.raises(GapevalError) as exc:
        ModelServer(f"py:{SLOW}:SlowModel", {"log": str(tmp_path / "l")}, host="0.0.0.0")
    assert exc.value.field == "--host" and "GAPEVAL_SERVE_TOKEN" in exc.value.message
    monkeypatch.setenv("GAPEVAL_SERVE_TOKEN", "s3cret-token")
    server = ModelServer(f"py:{SLOW}:SlowModel", {"log": str(tmp_path / "l"), "delay": "0"}).start()
    try:
        monkeypatch.setenv("GAPEVAL_SERVE_TOKEN", "wrong")
        with pytest.raises(GapevalError, match="answered HTTP 401; set GAPEVAL_SERVE_TOKEN"):
            api.run(str(sample_tree), server.url, out=tmp_path / "r", judges=["rules"])
        monkeypatch.setenv("GAPEVAL_SERVE_TOKEN", "s3cret-token")
        res = api.run(str(sample_tree), server.url, out=tmp_path / "r", judges=["rules"])
    finally:
        server.close()
    assert res.stats.done == 24
    assert not any(b"s3cret-token" in p.read_bytes() for p in (tmp_path / "r").rglob("*") if p.is_file())


def test_a_server_restarted_on_another_port_resumes_its_run(sample_tree, tmp_path) -> None:
    opts = {"log": str(tmp_path / "served.log"), "delay": "0"}
    first = ModelServer(f"py:{SLOW}:SlowModel", opts).start()
    try:
        api.run(str(sample_tree), first.url, out=tmp_path / "r", judges=["rules"])
    finally:
        first.close()
    second = ModelServer(f"py:{SLOW}:SlowModel", opts).start()
    try:
        assert second.url != first.url
        res = api.run(str(sample_tree), second.url, out=tmp_path / "r", judges=["rules"])
    finally:
        second.close()
    assert res.resumed and not res.model_loaded and res.stats.skipped_done == 24
    with RunStore.open(tmp_path / "r") as store:
        assert store.manifest().spec.model == second.url
        assert "server" not in store.manifest().spec.model_identity


# -- the model-server client --------------------------------------------------------------------------------


@contextmanager
def fake_server(handle: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            handle(self)

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def health_reply(**over: Any) -> Callable[[BaseHTTPRequestHandler], None]:
    body = json.dumps(
        {"protocol": "gapeval-model-server", "version": 1, "name": "x", "batch_size": 2, **over}
    )

    def handle(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("content-length", str(len(body)))
        h.end_headers()
        h.wfile.write(body.encode())

    return handle


def drip(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("content-length", "1000")
    h.end_headers()
    for _ in range(100):
        try:
            h.wfile.write(b" ")
            h.wfile.flush()
        except OSError:
            return
        time.sleep(0.2)


def test_a_dripping_server_is_cut_off_at_the_timeout(sample_tree, tmp_path) -> None:
    with fake_server(drip) as url:
        t0 = time.monotonic()
        with pytest.raises(GapevalError, match="no whole reply within 1 s"):
            api.run(str(sample_tree), url, out=tmp_path / "r", model_options={"timeout_s": "1"})
        assert time.monotonic() - t0 < 5


def test_a_huge_reply_is_refused_as_it_arrives(sample_tree, tmp_path, monkeypatch) -> None:
    from gapeval.models import remote

    monkeypatch.setattr(remote, "MAX_REPLY", 1000)
    with (
        fake_server(health_reply(description={"pad": "x" * 5000})) as url,
        pytest.raises(GapevalError, match="reply larger than 1000 bytes"),
    ):
        api.run(str(sample_tree), url, out=tmp_path / "r")


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"batch_size": "x"}, "health.batch_size"),
        ({"batch_size": 0}, "health.batch_size"),
        ({"capabilities": {"edits": "yes"}}, "health.edits"),
        ({"identity": [1]}, "health.identity"),
    ],
)
def test_an_unusable_health_reply_is_one_line_before_anything_is_written(
    cli, sample_tree, tmp_path, over, field
) -> None:
    with fake_server(health_reply(**over)) as url:
        code, _, err = invoke(cli, "run", str(sample_tree), "-m", url, "-o", str(tmp_path / "r"))
    line = one_line_error(code, err)
    assert line.startswith("error: http://127.0.0.1:") and f"field '{field}'" in line
    assert not (tmp_path / "r").exists()


# -- OpenAI-compatible endpoints ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_wrong_base_url_fails_at_once_in_one_line(cli, sample_tree, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    code, _, err = invoke(
        cli,
        "run",
        str(sample_tree),
        "-m",
        "openai:some-model",
        "-o",
        str(tmp_path / "r"),
        "-j",
        "rules",
        "--model-opt",
        f"base_url={url}",
        "--model-opt",
        "api_key_env=GAPEVAL_TEST_KEY",
    )
    line = one_line_error(code, err)
    assert time.monotonic() - t0 < 30
    assert line.startswith(f"error: field 'base_url': cannot reach {url} (") and "check base_url" in line


def test_a_run_whose_outputs_all_failed_says_why(cli, sample_tree, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    with ScriptedServer(lambda body, n: Reply(status=400, error="model does not exist")) as srv:
        code, _out, err = invoke(
            cli,
            "run",
            str(sample_tree),
            "-m",
            "openai:nope",
            "-o",
            str(tmp_path / "r"),
            "-j",
            "rules",
            "--model-opt",
            f"base_url={srv.base_url}",
            "--model-opt",
            "api_key_env=GAPEVAL_TEST_KEY",
            "--model-opt",
            "max_attempts=1",
        )
    assert code == 2
    lines = err.strip().splitlines()
    assert lines[-2].startswith("24 outputs failed; first reasons: ") and "model does not exist" in lines[-2]
    assert lines[-1].startswith(
        f"error: {tmp_path / 'r'}: field 'outputs': nothing to score: all 24 outputs failed"
    )
    assert "run the same gapeval run command again" in lines[-1] and "gapeval judge" not in lines[-1]


def test_the_judge_id_names_the_endpoint_wherever_it_came_from(cli, replay_run, monkeypatch) -> None:
    with ScriptedServer() as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        code, _out, err = invoke(
            cli, "judge", str(replay_run), "-j", "openai:test-vlm", "--api-key-env", "GAPEVAL_TEST_KEY"
        )
        assert code == 0 and srv.requests, err
    endpoint = srv.base_url.split("//", 1)[1]
    with RunStore.open(replay_run) as store:
        ids = {v.judge_id for v in store.verdicts()}
    assert ids == {f"openai:test-vlm[default]@{endpoint}"}


def test_run_takes_the_judge_endpoint_as_base_url(cli, sample_tree, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GAPEVAL_TEST_KEY", TEST_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with ScriptedServer() as srv:
        code, out, err = invoke(
            cli,
            "run",
            str(sample_tree),
            "-m",
            "replay:demo-umm",
            "-o",
            str(tmp_path / "r"),
            "-j",
            "openai:test-vlm",
            "--base-url",
            srv.base_url,
            "--judge-opt",
            "api_key_env=GAPEVAL_TEST_KEY",
            "--fragility",
            "0",
            "--no-html",
        )
    assert code == 0, err
    assert f"judge openai:test-vlm[default]@{srv.base_url.split('//', 1)[1]}: " in out
