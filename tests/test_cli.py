"""The command line end to end: real photos, the offline `lite` embedder, JSON out."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from core.cli import run

from .photos import photo_variants, save_photo_folders

CONCEPTS = {"cat": "chelsea", "coffee": "coffee", "astronaut": "astronaut"}


def _json(capsys, argv) -> tuple[int, object]:
    code = run(["--json", *argv])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    save_photo_folders(root / "train", CONCEPTS, count=5)
    queries = root / "queries"
    queries.mkdir()
    for concept, photo in CONCEPTS.items():
        photo_variants(photo, 1, seed=1234)[0].save(queries / f"{concept}.jpg")
    (queries / "broken.jpg").write_bytes(b"not an image")
    return root


def test_create_ingest_train_predict_search_on_real_photos(photos, capsys):
    assert _json(capsys, ["project", "create", "demo", "--embedder", "lite"])[1]["embedder"] == "lite"
    code, report = _json(capsys, ["ingest", "demo", str(photos / "train"), "--labels-from-folders"])
    assert code == 0 and len(report["added"]) == 15 and report["failed"] == []
    code, again = _json(capsys, ["ingest", "demo", str(photos / "train")])
    assert again["added"] == [] and len(again["already_stored"]) == 15

    code, concepts = _json(capsys, ["concepts", "demo"])
    # Once per concept, photos counted as such, and the text space (no texts here) left out.
    assert sorted((c["concept"], c["examples"], c["heads"]) for c in concepts) == [
        (name, {"image": {"positive": 5, "negative": 0}}, {"lite-image": "linear"}) for name in ("astronaut", "cat", "coffee")
    ]
    code, trained = _json(capsys, ["train", "demo"])
    assert code == 0 and trained["version"] == 1 and trained["seconds"] < 60

    code = run(["predict", "demo", *sorted(str(p) for p in (photos / "queries").iterdir())])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_name = {os.path.basename(line["input"]): line for line in lines}
    assert code == 3 and set(by_name) == {"astronaut.jpg", "broken.jpg", "cat.jpg", "coffee.jpg"}  # 3: partly done
    assert "error" in by_name["broken.jpg"]
    for concept in CONCEPTS:
        line = by_name[f"{concept}.jpg"]
        assert line["concepts"][0]["concept"] == concept and line["head"] == "linear"
        assert line["concepts"][0]["score"] > 0.5

    code, hits = _json(capsys, ["search", "demo", str(photos / "queries" / "coffee.jpg"), "-k", "3"])
    assert [os.path.dirname(h["name"]).endswith("coffee") for h in hits] == [True] * 3


def test_texts_csv_label_and_predict_text(tmp_path, capsys):
    table = tmp_path / "chat.csv"
    table.write_text(
        "text,topic\n"
        "I love football and the world cup,sports\nThe tennis final was thrilling,sports\nOur team won the basketball game,sports\n"
        "Bake the bread for forty minutes,cooking\nAdd salt and stir the soup,cooking\nChop the onions finely,cooking\n"
    )
    run(["project", "create", "words", "--embedder", "lite"])
    capsys.readouterr()
    code, report = _json(capsys, ["ingest", "words", str(table), "--label-column", "topic"])
    assert len(report["added"]) == 6 and report["labelled"] == 6
    code, inputs = _json(capsys, ["inputs", "words"])
    first = inputs[0]["id"]
    assert _json(capsys, ["label", "words", str(first), "sports", "--negative"])[1]["value"] == -1
    run(["label", "words", str(first), "sports"])
    capsys.readouterr()
    run(["train", "words"])
    capsys.readouterr()
    run(["predict", "words", "--text", "the striker scored a goal", "--text", "simmer the sauce with garlic"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["concepts"][0]["concept"] for line in lines] == ["sports", "cooking"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "nope"], "no project named 'nope'"),
        (["project", "create", "../evil"], "not a valid project name"),
        (["project", "create", "x", "--embedder", "foo"], "unknown embedder"),
        (["label", "known", "999", "cat"], "no input '999'"),
        (["predict", "known", "--text", "hi"], "no trained model"),
        (["ingest", "known"], "nothing to ingest"),
    ],
)
def test_errors_are_one_line_with_exit_status_1(argv, message, capsys):
    run(["project", "create", "known", "--embedder", "tiny"])
    capsys.readouterr()
    assert run(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("error: ")


def test_module_entry_point_and_clip_weights_message(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.getcwd()}
    done = subprocess.run([sys.executable, "-m", "core", "project", "create", "c"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "conceptlab models download clip" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    listed = subprocess.run(
        [sys.executable, "-m", "core", "--json", "project", "list"], env=env, capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


@pytest.mark.parametrize(
    "flags, method",
    [([], "5-fold cross-validation"), (["--no-evaluate"], "not cross-validated")],
)
def test_train_cross_validates_unless_told_not_to(photos, capsys, flags, method):
    assert _json(capsys, ["project", "create", "quick", "--embedder", "tiny"])[0] == 0
    assert _json(capsys, ["ingest", "quick", str(photos / "train"), "--labels-from-folders"])[0] == 0
    code, trained = _json(capsys, ["train", "quick", *flags])
    image = next(e for e in trained["evaluations"] if e["space"] == "tiny-image")
    assert code == 0 and image["method"] == method
    assert {p["head"] for p in trained["concepts"] if p["space"] == "tiny-image"} == {"linear"}
    assert all(c["scores"] == {} for c in trained["choices"]) == bool(flags)


# ---------------------------------------------------------------- the installed command

CONSOLE_SCRIPT = os.path.join(os.path.dirname(sys.executable), "conceptlab")
# Runs one command line like the console script, then reports on the last line what the process loaded.
_REPORTING_RUN = """
import json, sys
from core.cli import run
status = run(sys.argv[1:])
from core.embedding.registry import list_loaded_embedders
loaded = {"status": status, "torch": "torch" in sys.modules, "dlib": "dlib" in sys.modules, "embedders": list_loaded_embedders()}
print("LOADED " + json.dumps(loaded))
"""


def _conceptlab(args: list[str], cwd, home) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([CONSOLE_SCRIPT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _loaded(args: list[str], cwd, home, **variables: str) -> dict:
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1", **variables}
    done = subprocess.run([sys.executable, "-c", _REPORTING_RUN, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    report = json.loads(done.stdout.strip().splitlines()[-1].removeprefix("LOADED "))
    assert report["status"] == 0, done.stderr
    return report


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A folder outside the repository with photos/{cat,coffee}, a broken photo beside them, and a data home."""
    root = tmp_path_factory.mktemp("elsewhere")
    save_photo_folders(root / "photos", {"cat": "chelsea", "coffee": "coffee"}, count=4)
    (root / "broken").mkdir()
    (root / "broken" / "bad.jpg").write_bytes(b"not a jpeg")
    photo_variants("chelsea", 1, seed=99)[0].save(root / "broken" / "good.jpg")
    return root, root / "home"


@pytest.fixture(scope="module")
def pets(outside):
    """The photos of ``outside`` as a trained lite project, "pets", made with the installed command."""
    root, home = outside
    for args in (
        ["project", "create", "pets", "--embedder", "lite"],
        ["ingest", "pets", "photos", "--labels-from-folders"],
        ["train", "pets"],
    ):
        done = _conceptlab(args, root, home)
        assert done.returncode == 0, done.stderr
    return root, home


def test_the_installed_command_end_to_end_from_another_folder(outside):
    root, home = outside
    version = _conceptlab(["--version"], root, home)
    assert version.returncode == 0 and version.stdout.startswith("conceptlab ")
    module = subprocess.run([sys.executable, "-m", "core", "--version"], cwd=root, capture_output=True, text=True, timeout=60)
    assert module.stdout == version.stdout  # python -m core is the same command, from any folder too
    assert _conceptlab(["project", "create", "trip", "--embedder", "lite", "--json"], root, home).returncode == 0
    ingested = _conceptlab(["ingest", "trip", "photos", "--labels-from-folders", "--json"], root, home)  # a relative path
    assert ingested.returncode == 0 and len(json.loads(ingested.stdout)["added"]) == 8
    assert ingested.stderr == ""  # no progress bar, no warning: stderr is not a terminal
    trained = _conceptlab(["train", "trip"], root, home)
    heads = [line for line in trained.stdout.splitlines() if line.startswith("  cat:") and "(+" in line]
    assert trained.returncode == 0 and "lite-text" not in trained.stdout and len(heads) == 1  # once, not once per space
    predicted = _conceptlab(["predict", "trip", str(root / "broken"), "--json"], root, home)  # --json after the command
    assert predicted.returncode == 3, predicted.stderr  # partly done: one photo predicted, one refused
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [("error" in line, os.path.basename(line["input"])) for line in lines] == [(True, "bad.jpg"), (False, "good.jpg")]
    assert lines[1]["concepts"][0]["concept"] == "cat"
    again = _conceptlab(["ingest", "trip", "broken", "--json"], root, home)
    assert again.returncode == 3 and [f["input"].endswith("bad.jpg") for f in json.loads(again.stdout)["failed"]] == [True]
    assert _conceptlab(["ingest", "trip", "broken/bad.jpg"], root, home).returncode == 1  # nothing done
    assert _conceptlab(["train"], root, home).returncode == 2  # bad usage


@pytest.mark.parametrize(
    "args, torch, models",
    [
        # Listing, labelling, concept edits, thresholds, project commands: no torch at all.
        (["project", "list"], False, {}),
        (["concepts", "pets"], False, {}),
        (["concepts", "pets", "--create", "dog"], False, {}),
        (["inputs", "pets"], False, {}),
        (["label", "pets", "1", "dog", "--negative"], False, {}),
        (["threshold", "pets", "cat", "0.6"], False, {}),
        (["export", "pets", "pets-model.zip"], False, {}),
        (["import", "pets-copy", "pets-model.zip"], False, {}),
        # Known bytes: labels only, no embedder.
        (["ingest", "pets", "photos", "--labels-from-folders"], False, {}),
        # Training fits heads with torch on stored vectors, but loads no model.
        (["train", "pets"], True, {}),
        # A photo needs the image model only, run by onnxruntime from the export ingest cached: no torch;
        # a text the text model only.
        (["predict", "pets", "broken/good.jpg"], False, {"lite": ["image"]}),
        (["search", "pets", "--text", "a cat"], True, {"lite": ["text"]}),
        # Asked for torch, the image model runs in torch.
        (["predict", "pets", "broken/good.jpg", "CONCEPTLAB_RUNTIME=torch"], True, {"lite": ["image"]}),
    ],
    ids=lambda row: " ".join(row) if isinstance(row, list) else None,
)
def test_which_commands_import_torch_or_load_a_model(pets, args, torch, models):
    root, home = pets
    variables = dict(arg.split("=", 1) for arg in args if arg.startswith("CONCEPTLAB_"))
    report = _loaded([arg for arg in args if not arg.startswith("CONCEPTLAB_")], root, home, **variables)
    assert (report["torch"], report["embedders"]) == (torch, models)


@pytest.mark.parametrize("args", [["project", "list"], ["inputs", "many"], ["concepts", "many"]])
def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path, args):
    home = tmp_path / "home"
    for setup in (["project", "create", "many", "--embedder", "tiny"], ["ingest", "many", "--text", "a line of text"]):
        assert _conceptlab(setup, tmp_path, home).returncode == 0
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([CONSOLE_SCRIPT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    process.stdout.close()  # like `conceptlab ... | head -0`: nobody reads
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1 and b"Traceback" not in stderr and b"BrokenPipe" not in stderr


@pytest.mark.parametrize(
    "layout, labelled, noted",
    [
        ({"a.txt": "one", "b.txt": "two"}, 0, True),  # no subfolder: nothing could be labelled, and it says so
        ({"cats/a.txt": "one", "dogs/b.txt": "two"}, 2, False),
        ({"cats/a.txt": "one", "b.txt": "two"}, 1, False),  # a loose file beside concept folders is normal
    ],
    ids=["no-subfolders", "subfolders", "mixed"],
)
def test_labels_from_folders_says_when_no_input_was_in_a_folder(tmp_path, capsys, layout, labelled, noted):
    for name, text in layout.items():
        (tmp_path / "in" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "in" / name).write_text(text)
    assert run(["project", "create", "notes", "--embedder", "tiny"]) == 0
    capsys.readouterr()
    code, report = _json(capsys, ["ingest", "notes", str(tmp_path / "in"), "--labels-from-folders"])
    assert code == 0 and report["labelled"] == labelled and bool(report["notes"]) == noted
    assert run(["ingest", "notes", str(tmp_path / "in"), "--labels-from-folders"]) == 0
    err = capsys.readouterr().err
    assert ("note: no input was in a subfolder" in err) == noted


@pytest.mark.parametrize("keep_paths, expected", [(False, "photos/cat/{name}"), (True, "{root}/photos/cat/{name}")])
def test_ingest_stores_names_relative_to_the_folder_given_unless_asked(photos, capsys, keep_paths, expected):
    assert run(["project", "create", "paths", "--embedder", "tiny"]) == 0
    capsys.readouterr()
    flags = ["--keep-paths"] if keep_paths else []
    folder = photos / "train"
    shutil.copytree(folder / "cat", photos / "photos" / "cat", dirs_exist_ok=True)
    code, report = _json(capsys, ["ingest", "paths", str(photos / "photos"), "--labels-from-folders", *flags])
    assert code == 0 and len(report["added"]) == 5
    code, listed = _json(capsys, ["inputs", "paths"])
    first = sorted(os.listdir(photos / "photos" / "cat"))[0]
    assert sorted(entry["name"] for entry in listed)[0] == expected.format(root=photos, name=first)


@pytest.mark.parametrize(
    "args, lines, more",
    [
        ([], 5, None),
        (["--limit", "2"], 2, "… 3 more of 5: --limit 0 lists all, --offset N skips N"),
        (["--limit", "0"], 5, None),  # 0 lists every input
        (["--limit", "2", "--offset", "4"], 1, None),
        (["--offset", "9"], 1, None),  # past the end: one line saying so
    ],
)
def test_inputs_lists_pages_and_says_what_is_left(tmp_path, capsys, args, lines, more):
    assert run(["project", "create", "many", "--embedder", "tiny"]) == 0
    assert run(["ingest", "many", *[arg for i in range(5) for arg in ("--text", f"text {i}")]]) == 0
    capsys.readouterr()
    assert run(["inputs", "many", *args]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == lines
    assert (err.strip() or None) == more
    if args == ["--offset", "9"]:
        assert out.strip() == "no inputs after the first 5 (of 5)"


@pytest.mark.parametrize("value", ["-1", "many"])
def test_inputs_refuses_a_limit_that_is_not_a_count(capsys, value):
    assert run(["project", "create", "few", "--embedder", "tiny"]) == 0
    with pytest.raises(SystemExit) as stopped:
        run(["inputs", "few", "--limit", value])
    assert stopped.value.code == 2 and "--limit" in capsys.readouterr().err


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port``, from the kernel's own tables (/proc/net/tcp, tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # The kernel writes each 32-bit word in host (little-endian) order.
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                    found.add(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, words))
    return found


def test_the_studio_listens_on_this_computer_only(tmp_path):
    """`make run` runs `conceptlab studio`: loopback unless told, and the sidebar says so."""
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CONCEPTLAB_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "STREAMLIT_SERVER_HEADLESS": "true"}
    log = tmp_path / "studio.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([CONSOLE_SCRIPT, "studio", "--port", str(port)], cwd=tmp_path, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert _listening_addresses(port) == {"127.0.0.1"}
        assert "Only this computer can open the studio." in log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.mark.parametrize("address", ["0.0.0.0", "", "192.0.2.7"])
def test_the_studio_refuses_a_network_without_accounts_in_one_sentence(tmp_path, address):
    done = _conceptlab(["studio", "--address", address, "--port", "1"], tmp_path, tmp_path)
    assert done.returncode == 1 and not done.stdout  # an error: nothing was started
    (line,) = done.stderr.strip().splitlines()
    assert "with accounts off: anyone on the network could change and delete every project" in line and "--accounts" in line
    assert "--open-to-anyone-on-the-network" in line


def test_users_and_members_from_the_command_line(tmp_path):
    added = _conceptlab(["users", "add", "alice", "--admin"], tmp_path, tmp_path)
    assert added.returncode == 0, added.stderr
    heading, one_time, note = added.stdout.strip().splitlines()
    assert heading == "added admin 'alice'" and "shown once" in note and len(one_time) >= 16
    env = {**os.environ, "CONCEPTLAB_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [CONSOLE_SCRIPT, "users", "add", "bob", "--password-stdin"], input="bob's own password\n", env=env, capture_output=True, text=True
    )
    assert done.returncode == 0 and "shown once" not in done.stdout
    listed = _conceptlab(["--json", "users", "list"], tmp_path, tmp_path)
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert users["alice"]["admin"] and users["alice"]["must_change"] and not users["bob"]["must_change"]
    assert "hash" not in listed.stdout and "bob's own password" not in (tmp_path / "users.db").read_bytes().decode("latin-1")
    assert _conceptlab(["project", "create", "P", "--embedder", "tiny"], tmp_path, tmp_path).returncode == 0
    assert _conceptlab(["members", "set", "P", "bob", "labeller"], tmp_path, tmp_path).stdout.strip() == "bob is now a labeller of 'P'"
    assert json.loads(_conceptlab(["--json", "members", "list", "P"], tmp_path, tmp_path).stdout) == {"bob": "labeller"}
    unknown = _conceptlab(["members", "set", "P", "carol", "viewer"], tmp_path, tmp_path)
    assert unknown.returncode == 1 and "there is no user named 'carol'" in unknown.stderr
    bad_role = _conceptlab(["members", "set", "P", "bob", "emperor"], tmp_path, tmp_path)
    assert bad_role.returncode == 2 and "invalid choice: 'emperor'" in bad_role.stderr
    assert _conceptlab(["users", "disable", "bob"], tmp_path, tmp_path).stdout.strip() == "disabled 'bob'"


# ---------------------------------------------------------------- faces


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """Five people's photos (tests/fixtures/faces/train) in a faces project "people", made with the installed command."""
    from .faces import FACES

    root = tmp_path_factory.mktemp("people")
    shutil.copytree(FACES / "train", root / "train")
    shutil.copytree(FACES / "test", root / "test")
    home = root / "home"
    done = _conceptlab(["project", "create", "people", "--embedder", "faces", "--json"], root, home)
    assert done.returncode == 0 and json.loads(done.stdout)["embedder"] == "faces", done.stderr
    return root, home


def test_faces_create_ingest_train_predict_end_to_end(people):
    from .faces import make_no_face

    root, home = people
    make_no_face(root / "team.jpg")
    ingested = _conceptlab(["ingest", "people", "train", "--labels-from-folders", "--json"], root, home)
    report = json.loads(ingested.stdout)
    assert ingested.returncode == 0 and len(report["added"]) == 10 and report["labelled"] == 10, ingested.stderr
    again = _conceptlab(["ingest", "people", "train", "team.jpg", "--json"], root, home)
    report = json.loads(again.stdout)
    assert again.returncode == 3 and report["added"] == [] and len(report["already_stored"]) == 10
    assert [(os.path.basename(f["input"]), f["error"]) for f in report["failed"]] == [("team.jpg", "no face found")]
    listed = json.loads(_conceptlab(["inputs", "people", "--json"], root, home).stdout)
    assert sorted(entry["name"] for entry in listed)[:2] == ["train/alex_lacamoire/img1.jpg#face1", "train/alex_lacamoire/img2.jpg#face1"]
    trained = _conceptlab(["train", "people"], root, home)
    assert trained.returncode == 0 and "faces-text" not in trained.stdout, trained.stderr
    predicted = _conceptlab(["predict", "people", "test/obama_and_biden.jpg", "test/kit_with_rose.jpg", "team.jpg", "--json"], root, home)
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert predicted.returncode == 3  # partly done: the photo without a face
    top = [(line["input"], line["concepts"][0]["concept"] if "concepts" in line else line["error"]) for line in lines]
    assert top[:2] == [("test/obama_and_biden.jpg#face1", "biden"), ("test/obama_and_biden.jpg#face2", "obama")]
    assert top[3:] == [
        ("test/kit_with_rose.jpg#face1", "rose_leslie"),
        ("test/kit_with_rose.jpg#face2", "kit_harington"),
        ("team.jpg", "no face found"),
    ]
    assert all(len(line["face"]["box"]) == 4 for line in lines[:5])
    text = _conceptlab(["predict", "people", "--text", "Barack Obama"], root, home)
    (line,) = [json.loads(line) for line in text.stdout.splitlines()]
    assert text.returncode == 1 and line["error"] == "embedder 'faces' has no text space: it finds faces in photos and videos, not texts"


@pytest.mark.parametrize(
    "args, dlib",
    [
        (["project", "list"], False),
        (["concepts", "people"], False),
        (["inputs", "people"], False),
        (["ingest", "people", "train", "--labels-from-folders"], False),  # known photos: their faces are found in the store
        (["predict", "people", "test/obama1.jpg"], True),
    ],
    ids=lambda row: " ".join(row) if isinstance(row, list) else None,
)
def test_only_commands_that_find_faces_import_dlib(people, args, dlib):
    root, home = people
    if not (home / "projects" / "people" / "versions").exists() or args[0] == "predict":
        for setup in (["ingest", "people", "train", "--labels-from-folders"], ["train", "people"]):
            assert _conceptlab(setup, root, home).returncode == 0
    report = _loaded(args, root, home)
    assert (report["dlib"], report["torch"]) == (dlib, False)
    assert report["embedders"] == ({"faces": ["image"]} if dlib else {})


def test_demo_links_from_the_command_line(tmp_path):
    notes = tmp_path / "notes.csv"
    notes.write_text("text,topic\nan ant,ant\nanother ant,ant\na bee,bee\nanother bee,bee\n")
    for args in (["project", "create", "P", "--embedder", "tiny"], ["ingest", "P", str(notes), "--label-column", "topic"]):
        assert _conceptlab(args, tmp_path, tmp_path).returncode == 0
    untrained = _conceptlab(["share", "create", "P", "--until", "2999-01-01"], tmp_path, tmp_path)
    assert untrained.returncode == 1 and "no trained model" in untrained.stderr
    assert _conceptlab(["train", "P"], tmp_path, tmp_path).returncode == 0
    made = json.loads(_conceptlab(["--json", "share", "create", "P", "--until", "2999-01-01"], tmp_path, tmp_path).stdout)
    assert made["version"] == 1 and made["path"].startswith("/?share=")
    listed = _conceptlab(["share", "list", "P"], tmp_path, tmp_path).stdout
    assert f"{made['id']}\tversion 1\tuntil 2999-01-01\tworks" in listed and made["path"] not in listed  # the token never again
    assert _conceptlab(["share", "revoke", "P", made["id"]], tmp_path, tmp_path).stdout.strip() == f"revoked demo link {made['id']}"
    assert "revoked" in _conceptlab(["share", "list", "P"], tmp_path, tmp_path).stdout
    past = _conceptlab(["share", "create", "P", "--until", "2000-01-01"], tmp_path, tmp_path)
    assert past.returncode == 1 and "cannot expire in the past" in past.stderr
