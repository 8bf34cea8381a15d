"""The HTTP API end to end: a real `conceptlab serve` process on loopback, asked through httpx."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.photos import COLOURS, solid_image

CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "conceptlab")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conceptlab(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([CONSOLE_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=120)


class Server:
    """`conceptlab serve` in a child process; stopped by ``close``."""

    def __init__(self, home: Path, *options: str) -> None:
        self.port = _free_port()
        env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        command = [CONSOLE_SCRIPT, "serve", "--port", str(self.port), *options]
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/docs", timeout=1)
                break
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.process.stdout.read().decode()) from None
                time.sleep(0.2)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _png(colour: tuple[int, int, int], seed: int) -> bytes:
    buffer = io.BytesIO()
    solid_image(colour, seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A data home with a trained tiny project "colours" (red, green, blue photos), an untrained "empty" one,
    and "many": 1,200 labelled texts, whose training lasts long enough to be asked twice."""
    home = tmp_path_factory.mktemp("serve-home")
    folders = tmp_path_factory.mktemp("colour-photos")
    for concept, colour in COLOURS.items():
        (folders / concept).mkdir()
        for i in range(5):
            (folders / concept / f"{i}.png").write_bytes(_png(colour, seed=i))
    table = folders / "many.csv"
    rows = [f"message number {i} about {topic} {'x' * (i % 7)},{topic}" for i in range(600) for topic in ("sport", "food")]
    table.write_text("text,topic\n" + "\n".join(rows) + "\n")
    for args in (
        ("project", "create", "colours", "--embedder", "tiny"),
        ("ingest", "colours", str(folders), "--labels-from-folders"),
        ("train", "colours"),
        ("project", "create", "empty", "--embedder", "tiny"),
        ("project", "create", "many", "--embedder", "tiny"),
        ("ingest", "many", str(table), "--label-column", "topic"),
    ):
        done = _conceptlab(home, *args)
        assert done.returncode == 0, done.stderr
    return home


@pytest.fixture(scope="module")
def open_server(home):
    """A server with no tokens: loopback only, no authentication."""
    server = Server(home)
    yield server
    server.close()


def _files(*named: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (name, data)) for name, data in named]


def test_projects_and_one_project(open_server):
    with open_server.client() as client:
        listed = client.get("/v1/projects").json()
        assert sorted(p["name"] for p in listed) == ["colours", "empty", "many"]
        colours = client.get("/v1/projects/colours").json()
    assert colours["embedder"] == "tiny" and colours["active_version"] == 1 and len(colours["versions"]) == 1
    by_name = {c["name"]: c for c in colours["concepts"]}
    assert set(by_name) == set(COLOURS)
    red = by_name["red"]
    assert red["examples"] == {"image": {"positive": 5, "negative": 0}}
    assert 0 < red["threshold"]["tiny-image"] < 1 and red["cross_validated"]["tiny-image"]["f1"] == 1.0


def test_predict_files_with_a_broken_one_among_them(open_server):
    files = _files(("red.png", _png(COLOURS["red"], 77)), ("broken.png", b"not a png"), ("blue.png", _png(COLOURS["blue"], 78)))
    with open_server.client() as client:
        answer = client.post("/v1/projects/colours/predict", files=files, data={"top_k": "2", "include_neighbours": "false"})
    assert answer.status_code == 200
    red, broken, blue = answer.json()["results"]
    assert red["concepts"][0]["concept"] == "red" and blue["concepts"][0]["concept"] == "blue"
    assert len(red["concepts"]) == 2 and "neighbours" not in red
    assert broken == {"error": {"code": "bad_input", "message": "not a readable image", "input": "broken.png"}}


def test_predict_texts_search_and_add_inputs(open_server):
    with open_server.client() as client:
        texts = client.post("/v1/projects/colours/predict", json={"texts": ["a red thing", " "]})
        assert texts.status_code == 200
        first, blank = texts.json()["results"]
        assert first["kind"] == "text" and blank["error"]["message"] == "empty text"
        hits = client.post("/v1/projects/colours/search", files=_files(("q.png", _png(COLOURS["green"], 90))), data={"k": "3"}).json()
        assert [h["name"].split("/")[-2] for h in hits["results"]] == ["green"] * 3
        added = client.post(
            "/v1/projects/empty/inputs", files=_files(("a.png", _png(COLOURS["red"], 5)), ("b.txt", b"")), data={"concept": "red"}
        )
    assert added.status_code == 207  # partly done
    body = added.json()
    assert len(body["added"]) == 1 and body["labelled"] == 1 and body["failed"][0]["input"] == "b.txt"


PLAIN_TEXT_BODY = {"content": b"x", "headers": {"content-type": "text/plain"}}


@pytest.mark.parametrize(
    "method, path, kwargs, status, code",
    [
        ("get", "/v1/projects/nope", {}, 404, "unknown_project"),
        ("post", "/v1/projects/nope/predict", {"json": {"texts": ["x"]}}, 404, "unknown_project"),
        ("post", "/v1/projects/empty/predict", {"json": {"texts": ["x"]}}, 409, "no_model"),
        ("post", "/v1/projects/colours/predict", {"json": {"texts": ["x"], "version": 9}}, 404, "no_model"),
        ("post", "/v1/projects/colours/predict", {"json": {"texts": "x"}}, 422, "bad_request"),
        ("post", "/v1/projects/colours/predict", {"json": {}}, 422, "bad_request"),
        (
            "post",
            "/v1/projects/colours/predict",
            {"content": b"x", "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
        ),
        ("post", "/v1/projects/colours/search", {"json": {"texts": ["a", "b"]}}, 422, "bad_request"),
        ("get", "/v1/jobs/nope", {}, 404, "unknown_job"),
        ("get", "/v2/nothing", {}, 404, "not_found"),
    ],
)
def test_errors_are_one_json_object_with_the_right_status(open_server, method, path, kwargs, status, code):
    with open_server.client() as client:
        answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code and answer.json()["error"]["message"]


def _wait_for(client: httpx.Client, job: dict) -> dict:
    deadline = time.monotonic() + 120
    while job["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/v1/jobs/{job['id']}").json()
    return job


def test_a_training_job_reports_progress_and_its_result(open_server):
    with open_server.client() as client:
        started = client.post("/v1/projects/colours/train")
        assert started.status_code == 202 and started.json()["state"] == "running"
        job = _wait_for(client, started.json())
        assert job["state"] == "done" and job["progress"] == 1.0 and job["result"]["version"] >= 2
        # The server predicts with the new version without a restart.
        answer = client.post("/v1/projects/colours/predict", json={"texts": ["x"]}).json()
        assert answer["results"][0]["version"] == client.get("/v1/projects/colours").json()["active_version"] == job["result"]["version"]


def test_a_second_training_request_while_one_runs_gets_409(open_server):
    with open_server.client() as client:
        first = client.post("/v1/projects/many/train")  # 1,200 texts: cross-validation takes a while
        second = client.post("/v1/projects/many/train")
        assert (first.status_code, second.status_code) == (202, 409)
        assert second.json()["error"]["code"] == "already_training" and first.json()["id"] in second.json()["error"]["message"]
        assert _wait_for(client, first.json())["state"] == "done"
        third = client.post("/v1/projects/many/train")
        assert third.status_code == 202  # once the first is done, the project may train again
        _wait_for(client, third.json())


def test_sixteen_parallel_predictions_equal_the_sequential_ones(open_server):
    photos = [_png(COLOURS[name], 200 + i) for i, name in enumerate(sorted(COLOURS) * 6)][:16]

    def ask(data: bytes) -> list:
        with open_server.client() as client:
            answer = client.post("/v1/projects/colours/predict", files=_files(("q.png", data)))
            return [(c["concept"], c["score"]) for c in answer.json()["results"][0]["concepts"]]

    sequential = [ask(data) for data in photos]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(ask, photos))
    assert parallel == sequential


def test_tokens_roles_and_projects(home):
    made = {}
    for name, options in (("admin", ()), ("reader", ("--read-only",)), ("other", ("--project", "empty"))):
        done = _conceptlab(home, "tokens", "create", name, *options, "--json")
        assert done.returncode == 0, done.stderr
        made[name] = json.loads(done.stdout)["token"]
    listed = _conceptlab(home, "tokens", "list").stdout
    assert all(token not in listed for token in made.values()) and "reader\tevery project\tread-only" in listed
    server = Server(home)
    try:
        cases = [
            (None, "get", "/v1/projects", 401),
            ("cl_wrong", "get", "/v1/projects", 401),
            (made["admin"], "get", "/v1/projects", 200),
            (made["reader"], "post", "/v1/projects/colours/predict", 200),
            (made["reader"], "post", "/v1/projects/colours/train", 403),
            (made["reader"], "post", "/v1/projects/colours/inputs", 403),
            (made["other"], "get", "/v1/projects/colours", 403),
            (made["other"], "get", "/v1/projects/empty", 200),
        ]
        for token, method, path, status in cases:
            with server.client(token) as client:
                kwargs = {"json": {"texts": ["x"]}} if method == "post" else {}
                answer = getattr(client, method)(path, **kwargs)
                assert answer.status_code == status, (token, path, answer.text)
        with server.client(made["other"]) as client:
            assert [p["name"] for p in client.get("/v1/projects").json()] == ["empty"]
        assert _conceptlab(home, "tokens", "revoke", "admin").returncode == 0
        with server.client(made["admin"]) as client:
            assert client.get("/v1/projects").status_code == 401  # revoked: at the very next request
    finally:
        server.close()
        for name in ("reader", "other"):
            _conceptlab(home, "tokens", "revoke", name)


def test_limits_body_size_and_rate(home):
    server = Server(home, "--max-body-mb", "0.001", "--requests-per-minute", "6")
    try:
        with server.client() as client:
            big = client.post("/v1/projects/colours/predict", files=_files(("big.png", b"x" * 5000)))
            assert big.status_code == 413 and big.json()["error"]["code"] == "too_large"
            answers = [client.get("/v1/projects") for _ in range(3)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
    finally:
        server.close()


def test_no_network_address_without_tokens(home, tmp_path):
    bare = tmp_path / "bare-home"
    done = _conceptlab(bare, "serve", "--host", "0.0.0.0", "--port", str(_free_port()))
    assert done.returncode == 1 and "refusing to serve on 0.0.0.0 without tokens" in done.stderr


def test_the_api_documents_itself(open_server):
    with open_server.client() as client:
        assert "swagger" in client.get("/docs").text.lower()
        spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/projects",
        "/v1/projects/{name}",
        "/v1/projects/{name}/predict",
        "/v1/projects/{name}/search",
        "/v1/projects/{name}/inputs",
        "/v1/projects/{name}/train",
        "/v1/jobs/{job_id}",
    }
    predict_body = spec["paths"]["/v1/projects/{name}/predict"]["post"]["requestBody"]["content"]
    assert set(predict_body) == {"multipart/form-data", "application/json"}
    assert {"files", "top_k", "version", "include_neighbours"} <= set(predict_body["multipart/form-data"]["schema"]["properties"])


def test_tokens_act_as_their_users_with_those_users_roles(home):
    """A token made for a user has that user's roles in each project; a disabled user's token stops working."""
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    for user in ("lena", "vic"):
        done = subprocess.run(
            [CONSOLE_SCRIPT, "users", "add", user, "--password-stdin"],
            input=f"{user}'s own password\n",
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    for args in (
        ("members", "set", "colours", "lena", "labeller"),
        ("members", "set", "colours", "vic", "viewer"),
        ("members", "set", "empty", "vic", "viewer"),
    ):
        assert _conceptlab(home, *args).returncode == 0
    made = {}
    for user in ("lena", "vic"):
        made[user] = json.loads(_conceptlab(home, "tokens", "create", f"{user}-token", "--user", user, "--json").stdout)["token"]
    nobody = _conceptlab(home, "tokens", "create", "ghost-token", "--user", "ghost")
    assert nobody.returncode == 1 and "there is no user named 'ghost'" in nobody.stderr
    server = Server(home)
    try:
        texts = {"json": {"texts": ["a new message"]}}
        cases = [
            ("vic", "post", "/v1/projects/colours/predict", 200, None),
            ("vic", "post", "/v1/projects/colours/inputs", 403, "vic is a viewer of 'colours': to add inputs takes a labeller or above"),
            ("vic", "post", "/v1/projects/colours/train", 403, "vic is a viewer of 'colours': to train takes a trainer or above"),
            ("lena", "post", "/v1/projects/colours/inputs", 200, None),
            ("lena", "post", "/v1/projects/colours/train", 403, "lena is a labeller of 'colours': to train takes a trainer or above"),
            ("lena", "get", "/v1/projects/empty", 403, "lena is not a member of 'empty': to view the project takes a viewer or above"),
            ("vic", "get", "/v1/projects/empty", 200, None),
        ]
        for user, method, path, status, message in cases:
            with server.client(made[user]) as client:
                answer = getattr(client, method)(path, **(texts if method == "post" else {}))
                assert answer.status_code == status, (user, path, answer.text)
                if message:
                    assert answer.json()["error"] == {"code": "forbidden", "message": message, "input": None}, answer.text
        with server.client(made["lena"]) as client:
            assert [p["name"] for p in client.get("/v1/projects").json()] == ["colours"]  # only her projects
        assert _conceptlab(home, "users", "disable", "vic").returncode == 0
        with server.client(made["vic"]) as client:
            assert client.post("/v1/projects/colours/predict", **texts).status_code == 401
    finally:
        server.close()
        for token in ("lena-token", "vic-token"):
            _conceptlab(home, "tokens", "revoke", token)
