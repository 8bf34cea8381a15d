"""The Streamlit app with AppTest and the ``tiny`` embedder: sidebar, empty states and the whole loop."""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Error, Tab

from core.access import acting_as, find_actor_with
from core.ingestion import ingest
from core.inputs.uploads import read_uploads
from core.learning import train
from core.storage.projects import create_project, list_projects, open_project
from core.views.samples import add_sample_data

from .photos import solid_image

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
RED, BLUE = (220, 30, 30), (30, 40, 220)


@pytest.fixture(autouse=True)
def _app_environment(monkeypatch):
    # AppTest rebuilds its PagesManager on every run, and a fresh one takes the pages/ folder for
    # an old-style multipage app, skipping app.py; the real server decides once per process.
    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    st.cache_resource.clear()  # the app remembers per process whether CLIP weights are here; each test has its own data home
    # AppTest installs the app as sys.modules["__main__"] and leaves it there: a later test that
    # starts a process with multiprocessing's spawn would run app.py in the child.
    main = sys.modules.get("__main__")
    yield
    sys.modules["__main__"] = main
    find_actor_with(None)  # a studio with accounts on told the engine to ask its browser sessions: this process is a test's


def run_app(page: str | None = None, project: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if project:
        at.session_state.project = project
    at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click(at: AppTest, label: str, index: int = 0) -> AppTest:
    buttons = [b for b in at.button if b.label == label]
    assert buttons, f"no button {label!r} among {[b.label for b in at.button]}"
    buttons[index].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def descendants(node) -> list:
    """A block and everything inside it."""
    found, stack = [], [node]
    while stack:
        found.append(stack.pop())
        stack += list(getattr(found[-1], "children", {}).values())
    return found


def texts(at: AppTest) -> str:
    """Everything written on the page, for loose assertions."""
    parts = [
        e.value
        for kind in ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error")
        for e in getattr(at, kind)
    ]
    parts += [m.label + " " + str(m.value) for m in at.metric]
    return "\n".join(str(p) for p in parts)


def plain(markdown: str) -> str:
    """Markdown with its backslash escapes and word joiners undone: the text people see."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def _component(at: AppTest, prefix: str):
    stack = list(at._tree.children.values())
    while stack:
        node = stack.pop()
        if type(node).__name__ == "UnknownElement" and (node.key or "").startswith(prefix):
            return node
        stack += list(getattr(node, "children", {}).values())
    raise AssertionError(f"no custom component with a key starting {prefix!r}")


def component_data(at: AppTest, prefix: str) -> dict:
    """What the page sent a custom component (the Label page's picture grid or one-at-a-time view)."""
    return json.loads(_component(at, prefix).proto.json)


def send_event(at: AppTest, prefix: str, event: str, value, trigger: bool) -> AppTest:
    """Run the page as after the browser component reported ``event``: Streamlit's own widget-state message.

    A trigger (a one-off action) goes in the component's event list; a state value in its state.
    """
    from streamlit.components.v2.bidi_component.main import _make_trigger_id
    from streamlit.proto.WidgetStates_pb2 import WidgetStates

    base = _component(at, prefix).proto.id
    tree = at._tree
    original = tree.get_widget_states

    def with_event() -> WidgetStates:
        states = original()
        state = states.widgets.add()
        if trigger:
            state.id = _make_trigger_id(base, "events")
            state.json_trigger_value = json.dumps([{"event": event, "value": value}])
        else:
            state.id = base
            state.json_value = json.dumps({event: value})
        return states

    tree.get_widget_states = with_event
    try:
        return at.run()
    finally:
        tree.get_widget_states = original


def grid_action(at: AppTest, kind: str, ids) -> AppTest:
    return send_event(at, "grid_", "action", {"kind": kind, "ids": list(ids)}, trigger=True)


def grid_names(at: AppTest) -> list[str]:
    return [item["name"] for item in component_data(at, "grid_")["items"]]


def png(colour, seed=0) -> bytes:
    buffer = io.BytesIO()
    solid_image(colour, seed=seed).save(buffer, format="PNG")
    return buffer.getvalue()


def add_images(project, colour, count, concept=None, prefix=None, seed=0):
    files = [(f"{prefix or 'img'}{i}.png", png(colour, seed + i)) for i in range(count)]
    return ingest(project, read_uploads(files), concept=concept)


def labelled_demo(per_colour: int, exclusive: bool = False, blue_seed: int = 10):
    """A "demo" project with ``per_colour`` red images labelled red and as many blue ones labelled blue."""
    project = create_project("demo", "tiny", exclusive=exclusive)
    add_images(project, RED, per_colour, concept="red", prefix="red")
    add_images(project, BLUE, per_colour, concept="blue", prefix="blue", seed=blue_seed)
    return project


@pytest.fixture
def colours():
    """A tiny project with 4 red and 4 blue images, unlabelled."""
    project = create_project("colours", "tiny")
    add_images(project, RED, 4, prefix="red", seed=0)
    add_images(project, BLUE, 4, prefix="blue", seed=10)
    return project


# -- the pages' own rules (the import rules are in tests/test_layout.py) ---------------------------


def test_nothing_allows_html():
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            assert not (isinstance(node, ast.keyword) and node.arg == "unsafe_allow_html"), path
            assert not (isinstance(node, ast.Attribute) and node.attr == "html"), path


# -- sidebar and projects ------------------------------------------------------------------------


def test_welcome_says_clip_is_missing_and_preselects_lite():
    at = run_app()
    assert at.title[0].value == "Welcome to conceptlab"
    assert "CLIP weights are not on this machine" in at.info[0].value
    assert at.selectbox(key="new_embedder").value == "lite"
    assert [b.label for b in at.button if b.label == "Download CLIP weights"]


def test_download_without_network_ends_in_a_sentence(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    at = click(run_app(), "Download CLIP weights")
    (error,) = [e.value for e in at.error]  # one answer, no older error under it
    assert error.startswith("Could not download CLIP weights: this machine works offline. Use **Lite**")
    assert "checkpoint file" in error and "HF_HUB_OFFLINE" not in error and "--embedder" not in error
    assert [o.split(":")[0] for o in at.selectbox(key="new_embedder").options] == ["Lite", "Tiny"]  # CLIP cannot work here


def test_create_project_then_it_is_picked(monkeypatch):
    monkeypatch.setattr("core.embedding.load_embedder", _no_model)  # the first page renders before any model loads
    at = run_app()
    click(at, "Create project")
    assert at.error[0].value == "Give the project a name."
    at.text_input(key="new_name").input("Pets")
    at.selectbox(key="new_embedder").select("tiny")
    at.toggle(key="new_exclusive").set_value(True)
    click(at, "Create project")
    assert [p.name for p in list_projects()] == ["Pets"]
    assert open_project("Pets").exclusive and open_project("Pets").embedder_spec == "tiny"
    assert at.sidebar.selectbox[0].value == "Pets"
    assert at.title[0].value == "Upload"
    assert "This project is empty" in texts(at)
    assert "Project **Pets** is ready" in at.success[0].value


def _no_model(spec):
    raise AssertionError(f"a model ({spec}) was loaded")


def test_taken_name_is_a_sentence():
    create_project("Pets", "tiny")
    at = run_app()
    click(at, "New project")
    at.text_input(key="new_name").input("Pets")
    at.selectbox(key="new_embedder").select("tiny")
    click(at, "Create project")
    assert at.error[0].value.startswith("A project named")
    click(at, "Cancel")
    assert at.title[0].value == "Upload"
    click(at, "New project")
    at.switch_page("pages/train.py").run()
    assert at.title[0].value == "Train"  # going to another page closes the form


@pytest.mark.parametrize(
    "address, shown, warned",
    [
        (None, "alpha", False),  # no project named: the first
        ("beta", "beta", False),  # a reload, a bookmark or a shared link of beta's page
        ("BETA", "beta", False),  # the same name as typed differently
        ("gone", "alpha", True),  # a project deleted since the link was made: said, not silent
    ],
)
def test_the_address_names_the_project(address, shown, warned):
    create_project("alpha", "tiny")
    create_project("beta", "tiny")
    at = AppTest.from_file(APP, default_timeout=60)
    if address is not None:
        at.query_params["project"] = address
    at.run()
    assert at.session_state.project == shown and at.sidebar.selectbox[0].value == shown
    assert at.query_params["project"] == shown  # the address now names what is shown
    assert any("There is no project **gone** here" in w.value for w in at.warning) == warned


def test_picking_a_project_changes_the_address_and_survives_the_next_run():
    create_project("alpha", "tiny")
    create_project("beta", "tiny")
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["project"] = "alpha"
    at.run()
    at.sidebar.selectbox[0].select("beta").run()
    assert at.session_state.project == "beta" and at.query_params["project"] == "beta"
    at.switch_page("pages/train.py").run()
    assert at.session_state.project == "beta" and at.query_params["project"] == "beta"


def test_a_new_project_opens_on_upload_whatever_page_the_form_was_opened_on(monkeypatch):
    create_project("alpha", "tiny")
    at = run_app("train", "alpha")
    click(at, "New project")
    at.text_input(key="new_name").input("Pets")
    at.selectbox(key="new_embedder").select("tiny")
    click(at, "Create project")
    assert at.session_state.project == "Pets" and at.title[0].value == "Upload"
    assert "This project is empty" in texts(at)


def test_switch_rename_and_delete_with_confirmation():
    create_project("alpha", "tiny")
    create_project("beta", "tiny")
    at = run_app()
    assert at.sidebar.selectbox[0].value == "alpha"
    at.sidebar.selectbox[0].select("beta").run()
    assert at.session_state.project == "beta"
    at.sidebar.text_input(key="rename_to").input("gamma")
    click(at, "Rename")
    assert [p.name for p in list_projects()] == ["alpha", "gamma"]
    assert at.sidebar.selectbox[0].value == "gamma"
    click(at, "Delete this project…")
    assert "cannot be undone" in at.sidebar.warning[0].value
    click(at, "Keep it")
    assert len(list_projects()) == 2
    click(at, "Delete this project…")
    click(at, "Delete for good")
    assert [p.name for p in list_projects()] == ["alpha"]
    assert at.sidebar.selectbox[0].value == "alpha"


@pytest.mark.parametrize(
    "new, error, names",
    [
        ("Pets (2025)", None, ["Pets (2025)", "beta"]),  # parentheses are fine in a project's name
        ("a/b", "is not a valid project name", ["alpha", "beta"]),
        ("BETA", "A project named", ["alpha", "beta"]),  # another project's name, typed differently
    ],
)
def test_a_rename_that_fails_says_why_under_the_field(new, error, names):
    create_project("alpha", "tiny")
    create_project("beta", "tiny")
    at = run_app()
    at.sidebar.text_input(key="rename_to").input(new)
    click(at, "Rename")
    assert sorted(p.name for p in list_projects()) == names
    said = [plain(e.value) for e in at.sidebar.error]
    assert (len(said) == 1 and error in said[0]) if error else not said, said
    assert not at.main.error  # nothing far from the field
    if error:
        at.sidebar.selectbox[0].select("beta").run()
        assert not at.sidebar.error  # it was about alpha: not said under beta's field


# -- upload --------------------------------------------------------------------------------------


def test_sample_data_fills_an_empty_project():
    create_project("demo", "tiny")
    at = run_app()
    click(at, "Try with sample data")
    assert {m.label: m.value for m in at.metric}["Added"] == "24"
    assert open_project("demo").store.count_inputs() == {"image": 12, "text": 12}
    assert "Just added" in texts(at)


def test_upload_files_with_a_concept_and_a_broken_file():
    # AppTest sends only listed options: the concept exists beforehand (typing a new one is the browser test's job).
    create_project("demo", "tiny").store.create_concept("red")
    at = run_app()
    uploader = at.file_uploader[0]
    uploader.set_value([("a.png", png(RED, 1), "image/png"), ("b.png", png(RED, 2), "image/png"), ("broken.jpg", b"nope", "image/jpeg")])
    at.run()
    at.radio(key="files_how").set_value("All show a concept").run()
    at.selectbox(key="files_concept").set_value("red").run()
    click(at, "Add 3 files")
    metrics = {m.label: m.value for m in at.metric}
    assert (metrics["Added"], metrics["Already there"], metrics["Could not use"]) == ("2", "0", "1")
    failures = at.dataframe[0].value
    assert list(failures["File"]) == ["broken.jpg"] and "image" in failures["Why"][0]
    project = open_project("demo")
    assert [name for _, name in project.store.list_concepts()] == ["red"]
    assert all(project.store.labels_of(i) == {"red": 1} for i in range(1, 3))
    assert at.file_uploader[0].value == []  # a fresh uploader for the next batch


@pytest.mark.parametrize(
    "files, note",
    [
        ([("a.png", "png"), ("b.png", "png")], True),  # loose files: no folder, so folder names labelled nothing
        ([("shapes.zip", "zip")], False),  # a zip of red/ and blue/ folders: labelled, nothing to say
    ],
)
def test_folder_names_as_concepts_says_when_there_were_no_folders(files, note):
    create_project("demo", "tiny")
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("red/1.png", png(RED, 1))
        archive.writestr("blue/2.png", png(BLUE, 2))
    content = {"png": lambda i: png(RED, 10 + i), "zip": lambda i: zipped.getvalue()}
    at = run_app()
    at.file_uploader[0].set_value([(name, content[kind](i), "application/octet-stream") for i, (name, kind) in enumerate(files)]).run()
    at.radio(key="files_how").set_value("Folder names are concepts").run()
    click(at, f"Add {len(files)} file" + ("s" if len(files) > 1 else ""))
    infos = [i.value for i in at.info]
    assert any("No input was in a subfolder" in value for value in infos) == note, infos
    assert bool(open_project("demo").store.list_concepts()) != note


def test_an_upload_stopped_by_a_reload_is_told_on_return_once():
    from pages.common import ingest_with_progress

    project = create_project("demo", "tiny")

    def stopped_after_some(progress):
        # What Streamlit does to a page's run when the tab reloads: an exception at the next progress update.
        report = ingest(project, read_uploads([(f"{i}.png", png(RED, i)) for i in range(3)]))
        progress(report, "3 inputs read")
        raise KeyboardInterrupt("the run was stopped")

    with pytest.raises(KeyboardInterrupt):
        ingest_with_progress(project, 10, stopped_after_some)
    at = run_app(None, "demo")
    warnings = [w.value for w in at.warning]
    assert any("3 of 10 inputs were stored" in w for w in warnings), warnings
    assert not any("stopped before the end" in w.value for w in run_app(None, "demo").warning)  # once


@pytest.mark.parametrize("tab, fill, button", [("files", "uploader", "Add 1 file"), ("texts", "text_area", "Add 1 text")])
def test_an_upload_shows_its_progress_at_the_top_in_place_of_the_empty_card(monkeypatch, tab, fill, button):
    """The model's spinner, the bar and an error go at the top, in view; "This project is empty" is not said while one runs."""
    import pages.common
    from core.errors import WeightsMissingError

    def no_weights(spec):
        raise WeightsMissingError("the lite weights are not on this machine")

    monkeypatch.setattr(pages.common, "load_embedder", no_weights)
    create_project("demo", "tiny")
    at = run_app()
    assert "This project is empty" in texts(at)
    if fill == "uploader":
        at.file_uploader[0].set_value([("a.png", png(RED), "image/png")]).run()
    else:
        at.text_area[0].input("one text").run()
    click(at, button)
    assert "This project is empty" not in texts(at)
    blocks = [descendants(block) for block in at.main.children.values()]
    where = [i for i, nodes in enumerate(blocks) if any(isinstance(n, Error) and n.value.startswith("The lite weights") for n in nodes)]
    tabs = next(i for i, nodes in enumerate(blocks) if any(isinstance(n, Tab) for n in nodes))
    assert where and where[0] < tabs, where  # above the tabs, where the empty card was: not under the Add button


def test_a_tables_columns_are_offered_to_pick_and_its_rows_go_in_with_their_labels():
    project = create_project("demo", "tiny")
    table = b"id,message,category\n1,a red apple,fruit\n2,a green car,vehicle\n"
    at = run_app()
    at.file_uploader[0].set_value([("notes.csv", table, "text/csv")]).run()
    assert at.selectbox(key="text_column_pick").options == ["id", "message", "category"]
    at.selectbox(key="text_column_pick").set_value("message").run()
    at.selectbox(key="label_column_pick").set_value("category").run()
    click(at, "Add 1 file")
    assert sorted(r.text for r in project.store.list_inputs()) == ["a green car", "a red apple"]
    assert sorted(name for _, name in project.store.list_concepts()) == ["fruit", "vehicle"]


def test_when_nothing_went_in_it_says_so_and_the_files_stay():
    create_project("demo", "tiny")
    at = run_app()
    at.file_uploader[0].set_value([("empty.csv", b"text\n", "text/csv")]).run()
    click(at, "Add 1 file")
    assert any("Nothing went in: 1 file could not be used" in e.value for e in at.error)
    assert [f.name for f in at.file_uploader[0].value] == ["empty.csv"]  # still there, to try again


@pytest.mark.parametrize(
    "again, said, link", [(False, None, "Next: label them"), (True, "All 2 were already in the project", "Go to Label")]
)
def test_files_the_project_already_has_are_said_to_be_there_and_not_to_label(again, said, link):
    project = create_project("demo", "tiny")
    files = [("a.png", png(RED, 1), "image/png"), ("b.png", png(RED, 2), "image/png")]
    if again:
        ingest(project, read_uploads([(name, data) for name, data, _ in files]))
    at = run_app()
    at.file_uploader[0].set_value(files).run()
    click(at, "Add 2 files")
    infos = [i.value for i in at.info]
    assert any(said in i for i in infos) if said else not any("already in the project" in i for i in infos), infos
    assert [p.label for p in at.get("page_link") if "abel" in p.label] == [link]


def test_paste_texts_as_negatives():
    create_project("demo", "tiny").store.create_concept("spam")
    at = run_app()
    at.text_area[0].input("first text\n\nsecond text\n").run()
    at.radio(key="texts_how").set_value("None show a concept").run()
    at.selectbox(key="texts_concept").set_value("spam").run()
    click(at, "Add 2 texts")
    project = open_project("demo")
    assert project.store.count_inputs() == {"text": 2}
    assert project.store.labels_of(1) == {"spam": -1}


# -- label -----------------------------------------------------------------------------------------


def test_label_empty_states():
    create_project("demo", "tiny")
    at = run_app("label")
    assert "No concepts yet" in texts(at)
    assert "Nothing to label yet: add files on the Upload page." in texts(at)


def test_concepts_create_rename_delete():
    create_project("demo", "tiny")
    at = run_app("label")
    at.text_input(key="new_concept").input("cat")
    click(at, "Add concept")
    at.text_input(key="new_concept").input("dog")
    click(at, "Add concept")
    at.selectbox(key="rename_concept").select("dog")
    at.text_input(key="rename_concept_to").input("puppy")
    click(at, "Rename")
    assert [n for _, n in open_project("demo").store.list_concepts()] == ["cat", "puppy"]
    at.selectbox(key="delete_concept").select("cat")
    click(at, "Delete")
    assert "confirm" in at.warning[0].value
    at.checkbox(key="delete_concept_sure").check()
    click(at, "Delete")
    assert [n for _, n in open_project("demo").store.list_concepts()] == ["puppy"]
    at.text_input(key="new_concept").input("puppy")
    click(at, "Add concept")
    assert "already exists" in at.error[0].value


def test_select_many_and_label_them(colours):
    """The grid selects in the browser; the page gets the action with its inputs, labels them and clears the selection."""
    colours.store.create_concept("red")
    at = run_app("label", "colours")
    grid = component_data(at, "grid_")
    assert len(grid["items"]) == 8 and grid["concept"] is None and grid["summary"] == "8 inputs match · page 1 of 1"
    reds = [r.id for r in colours.store.list_inputs() if r.name.startswith("red")]
    at.selectbox(key="label_concept").set_value("red").run()
    assert component_data(at, "grid_")["concept"] == "red"
    cleared = component_data(at, "grid_")["cleared"]
    grid_action(at, "yes", reds)
    assert all(colours.store.labels_of(i) == {"red": 1} for i in reds)
    assert "Labelled 4 inputs as **red**." in texts(at)
    grid = component_data(at, "grid_")
    assert grid["cleared"] == cleared + 1  # the browser starts the next selection afresh
    assert {tuple(map(tuple, item["badges"])) for item in grid["items"] if item["id"] in reds} == {(("red", "yes"),)}
    at.selectbox(key="show_Gallery").select("Unlabelled").run()
    others = [item["id"] for item in component_data(at, "grid_")["items"]]
    assert len(others) == 4 and not set(others) & set(reds)
    grid_action(at, "no", others)
    assert all(colours.store.labels_of(i) == {"red": -1} for i in others)
    at.selectbox(key="show_Gallery").select("Negatives of…").run()
    assert sorted(item["id"] for item in component_data(at, "grid_")["items"]) == sorted(others)
    grid_action(at, "clear", others[:1])
    assert colours.store.labels_of(others[0]) == {}


@pytest.mark.parametrize(
    "concept, action, message",
    [
        (None, {"kind": "yes", "ids": [1]}, "Choose or type a concept first."),
        ("red", {"kind": "yes", "ids": []}, "Select some inputs first: click their pictures."),
        ("red", {"kind": "paint", "ids": [1]}, "The picture grid sent an unknown action 'paint'."),
        ("red", {"kind": "yes", "ids": ["1; drop"]}, "Not an input id: '1; drop'."),
        ("red", ["yes"], "The picture grid sent list, not an action."),
    ],
)
def test_a_grid_action_that_cannot_be_done_says_why_and_labels_nothing(colours, concept, action, message):
    colours.store.create_concept("red")
    at = run_app("label", "colours")
    if concept:
        at.selectbox(key="label_concept").set_value(concept).run()
    send_event(at, "grid_", "action", action, trigger=True)
    assert not at.exception
    assert message in [plain(m.value) for m in [*at.warning, *at.error]]
    assert not any(colours.store.labels_of_inputs(range(1, 9)).values())


def test_the_gallery_pages_and_a_new_filter_starts_on_its_first_page(colours, caplog):
    add_images(colours, BLUE, 30, prefix="more", seed=100)
    colours.store.create_concept("blue")
    at = run_app("label", "colours")
    assert component_data(at, "grid_")["summary"] == "38 inputs match · page 1 of 2"
    first = set(grid_names(at))
    at.pagination[0].set_value(2).run()
    assert component_data(at, "grid_")["summary"] == "38 inputs match · page 2 of 2"
    assert len(grid_names(at)) == 14 and not first & set(grid_names(at))
    at.selectbox(key="show_Gallery").select("Unlabelled").run()
    assert component_data(at, "grid_")["summary"] == "38 inputs match · page 1 of 2"
    assert not [r for r in caplog.records if "Session State" in r.getMessage()]  # the page number is the widget's alone


def test_find_similar_and_label_all_of_them(colours):
    colours.store.create_concept("warm")
    at = run_app("label", "colours")
    first_red = next(r.id for r in colours.store.list_inputs() if r.name == "red0.png")
    grid_action(at, "similar", [first_red])
    assert "Most like red0.png" in texts(at)
    at.selectbox(key="similar_concept").set_value("warm").run()
    click(at, "All 8 are warm")
    assert sum(1 for i in range(1, 9) if colours.store.labels_of(i) == {"warm": 1}) == 8
    click(at, "Close")
    assert "Most like" not in texts(at)


@pytest.mark.parametrize(
    "exclusive, answer, red_left",
    [
        (True, "Label all 8 as warm", 0),  # one concept per input: warm replaces red on all of them
        (True, "Only the 4 others", 4),  # the red ones keep red; the 4 others become warm
        (False, "Label all 8 as warm", 4),  # any number of concepts: red ones are red and warm
        (True, "Cancel", 4),
    ],
)
def test_find_similar_asks_before_relabelling_inputs_of_another_concept(exclusive, answer, red_left):
    project = create_project("demo", "tiny", exclusive=exclusive)
    add_images(project, RED, 4, concept="red", prefix="red")
    add_images(project, RED, 4, prefix="new", seed=20)
    project.store.create_concept("warm")
    at = run_app("label", "demo")
    source = next(r.id for r in project.store.list_inputs() if r.name == "new0.png")
    grid_action(at, "similar", [source])
    at.selectbox(key="similar_concept").set_value("warm").run()
    click(at, "All 8 are warm")
    assert any("4 of these are already labelled as another concept (4 red)" in w.value for w in at.warning)
    assert not any(labels.get("warm") for labels in project.store.labels_of_inputs(range(1, 9)).values())  # asked, nothing done yet
    click(at, answer)
    labels = project.store.labels_of_inputs(range(1, 9))
    assert sum(v.get("red") == 1 for v in labels.values()) == red_left
    assert sum(v.get("warm") == 1 for v in labels.values()) == (0 if answer == "Cancel" else 8 if answer.startswith("Label all") else 4)


def test_find_similar_cards_can_be_left_out(colours):
    colours.store.create_concept("warm")
    at = run_app("label", "colours")
    first_red = next(r.id for r in colours.store.list_inputs() if r.name == "red0.png")
    grid_action(at, "similar", [first_red])
    out = next(r.id for r in colours.store.list_inputs() if r.name == "blue0.png")
    at.button(key=f"leave_out_{out}").click().run()
    at.selectbox(key="similar_concept").set_value("warm").run()
    click(at, "All 7 are warm")
    assert colours.store.labels_of(out) == {} and sum(bool(colours.store.labels_of(i)) for i in range(1, 9)) == 7
    at.button(key=f"leave_out_{out}").click().run()  # put back
    assert [b.label for b in at.button if b.key == f"leave_out_{out}"] == ["Leave out"]


def test_the_concepts_panel_stays_open_after_each_action(colours):
    at = run_app("label", "colours")
    assert at.expander[0].label == "Concepts" and at.expander[0].proto.expanded  # no concepts yet: open
    at.text_input(key="new_concept").input("warm")
    click(at, "Add concept")
    at.text_input(key="new_concept").input("cold")
    click(at, "Add concept")
    panel = next(e for e in at.expander if e.label == "Concepts")
    assert panel.proto.expanded and "2 concepts" in [c.value for c in at.caption]
    assert [name for _, name in colours.store.list_concepts()] == ["cold", "warm"]


def answers(at: AppTest, log: list[dict], skipped=()) -> AppTest:
    """The one-at-a-time view reporting its log of answers not yet stored, and the inputs skipped."""
    return send_event(at, "one_", "progress", {"answers": log, "skipped": list(skipped)}, trigger=False)


@pytest.mark.parametrize("exclusive", [False, True])
def test_one_at_a_time_stores_answers_in_order_once_each(exclusive):
    project = create_project("demo", "tiny", exclusive=exclusive)
    add_images(project, RED, 4, prefix="red")
    add_images(project, BLUE, 4, prefix="blue", seed=10)
    for concept in ("blue", "red"):
        project.store.create_concept(concept)
    at = run_app("label", "demo")
    at.segmented_control(key="label_mode").set_value("One at a time").run()
    view = component_data(at, "one_")
    assert view["concepts"] == ["blue", "red"] and view["exclusive"] is exclusive and view["left"] == 8
    queue = [item["id"] for item in view["queue"]]
    assert len(queue) == 5 and view["stored_seq"] == 0  # a few sent ahead, so the next shows at once
    first, second, third = queue[:3]
    no_blue = [] if exclusive else ["blue"]
    log = [{"seq": 1, "id": first, "shows": ["red"], "shows_not": no_blue}]
    answers(at, log)
    assert project.store.labels_of(first) == {"red": 1} | ({} if exclusive else {"blue": -1})
    view = component_data(at, "one_")
    assert view["stored_seq"] == 1 and view["left"] == 7 and first not in [item["id"] for item in view["queue"]]
    # The browser resends what it has not seen stored: answer 1 again (stored once), 2 and 3 merged into one update.
    log += [
        {"seq": 2, "id": second, "shows": [], "shows_not": ["blue", "red"]},
        {"seq": 3, "id": first, "shows": ["blue"], "shows_not": [] if exclusive else ["red"]},  # went back and changed it
    ]
    answers(at, log, skipped=[third])
    assert project.store.labels_of(second) == {"blue": -1, "red": -1}
    assert project.store.labels_of(first) == {"blue": 1} if exclusive else {"blue": 1, "red": -1}
    view = component_data(at, "one_")
    assert view["stored_seq"] == 3 and view["skipped"] == [third] and view["left"] == 5
    assert not {first, second, third} & {item["id"] for item in view["queue"]}


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"seq": 1, "id": 1, "shows": ["green"], "shows_not": []}, "Answer 1 names 'green', which is not a concept of this project."),
        ({"seq": 1, "id": 1, "shows": ["red"], "shows_not": ["red"]}, "Answer 1 says both yes and no for 'red'."),
        ({"seq": -1, "id": 1, "shows": [], "shows_not": []}, "Not an input id: -1."),
        ({"seq": 1, "id": 1, "shows": "red", "shows_not": []}, "Answer 1 names no concepts."),
        (
            {"seq": 1, "id": 1, "shows": ["red", "blue"], "shows_not": []},
            "Answer 1: in this project an input is one concept, not red and blue.",
        ),  # noqa: E501
    ],
)
def test_a_malformed_answer_says_why_and_stores_nothing(entry, message):
    project = create_project("demo", "tiny", exclusive=True)
    add_images(project, RED, 2, prefix="red")
    for concept in ("blue", "red"):
        project.store.create_concept(concept)
    at = run_app("label", "demo")
    at.segmented_control(key="label_mode").set_value("One at a time").run()
    answers(at, [entry])
    assert not at.exception and message in [plain(e.value) for e in at.error]
    assert not any(project.store.labels_of_inputs([1, 2]).values())
    assert component_data(at, "one_")["stored_seq"] == 0


def test_suggestions_accept_and_reject(colours):
    add_images(colours, RED, 2, concept="red", prefix="known-red", seed=50)
    at = run_app("label", "colours")
    at.segmented_control(key="label_mode").set_value("Suggestions").run()
    offered = [int(b.key.removeprefix("accept_")) for b in at.button if b.key and b.key.startswith("accept_")]
    # Only photos about as close to the red examples as they are to each other: never the green and blue ones.
    assert offered and all(colours.store.get_input(i).name.startswith("red") for i in offered)
    assert "about as close to your red examples" in texts(at)
    first = [b for b in at.button if b.key == f"accept_{offered[0]}"][0]
    first.click().run()
    assert colours.store.labels_of(offered[0]) == {"red": 1}
    rest = [int(b.key.removeprefix("accept_")) for b in at.button if b.key and b.key.startswith("accept_")]
    click(at, "None are red")
    assert all(colours.store.labels_of(i) == {"red": -1} for i in rest)


# -- train and try -----------------------------------------------------------------------------------


def test_train_and_try_empty_states():
    create_project("demo", "tiny")
    at = run_app("train", "demo")
    assert "No concepts yet: add one on the Label page." in texts(at)
    at.switch_page("pages/try.py").run()
    assert "No trained model yet: train one on the Train page." in texts(at)


def test_train_shows_plan_hints_then_versions():
    project = create_project("demo", "tiny")
    add_images(project, RED, 2, concept="red")
    project.store.create_concept("blue")
    at = run_app("train", "demo")
    plan = at.dataframe[0].value
    assert list(plan["Concept"]) == ["blue", "red"]
    assert plan["Head"][0] == "not trained yet" and plan["Head"][1] == "prototype"  # two examples, nothing to compare them on
    assert list(plan["Examples"]) == ["0 yes · 0 no · 2 of other concepts", "2 yes · 0 no"]
    assert plan["Tip"][0].startswith("No examples yet")
    assert "blue has no examples yet" in at.warning[0].value
    click(at, "Train")
    assert "Version 1 trained" in at.success[0].value
    click(at, "Train")
    assert at.subheader[1].value == "Version 2"
    at.selectbox(key="active_pick").select(1).run()
    click(at, "Use this version")
    assert project.store.get_meta("active_version") == "1"


def test_whole_loop_with_sample_data_and_typed_text():
    project = create_project("demo", "tiny")
    add_sample_data(project)
    at = run_app("train", "demo")
    click(at, "Train")
    at.switch_page("pages/try.py").run()
    at.segmented_control(key="try_source").set_value("Text").run()
    at.text_area(key="try_text").input("The striker scored twice in the second half.")
    click(at, "Predict")
    assert "### sports" in [m.value for m in at.markdown]
    assert "Why: the closest labelled examples" in texts(at)


def test_try_a_video_says_when_each_concept_passes(colours, tmp_path):
    """A clip of red, then blue, then red: each colour's segments, not one top score for the whole clip."""
    from moviepy import ImageSequenceClip

    add_images(colours, RED, 3, concept="red", prefix="known-red", seed=60)
    add_images(colours, BLUE, 3, concept="blue", prefix="known-blue", seed=70)
    train(colours)
    frames = [np.full((48, 64, 3), colour, np.uint8) for colour in (RED, RED, BLUE, BLUE, RED, RED) for _ in range(10)]
    ImageSequenceClip(frames, fps=10).write_videofile(str(tmp_path / "clip.mp4"), codec="libx264", audio=False, logger=None)
    at = run_app("try", "colours")
    at.file_uploader(key="try_file").set_value(("clip.mp4", (tmp_path / "clip.mp4").read_bytes(), "video/mp4")).run()
    assert not at.exception, [e.value for e in at.exception]
    lines = {m.value.split("**: ")[0].strip("*"): m.value.split("**: ")[1] for m in at.markdown if "–" in m.value and "**: " in m.value}
    assert lines == {"red": "0:00–0:02, 0:04–0:06 (4 of 6 s)", "blue": "0:02–0:04 (2 of 6 s)"}, lines


def test_try_a_photo_and_a_broken_file(colours):
    add_images(colours, RED, 3, concept="red", prefix="known-red", seed=60)
    add_images(colours, BLUE, 3, concept="blue", prefix="known-blue", seed=70)
    train(colours)
    at = run_app("try", "colours")
    at.file_uploader(key="try_file").set_value(("new.png", png(RED, 99), "image/png")).run()
    assert not at.exception
    assert "### red" in [m.value for m in at.markdown]
    at.file_uploader(key="try_file").set_value(("bad.png", b"not a picture", "image/png")).run()
    assert plain(at.error[0].value).startswith("Could not use bad.png: not a readable image")
    at.segmented_control(key="try_source").set_value("Camera").run()
    buffer = io.BytesIO()
    solid_image(BLUE, seed=98).save(buffer, format="JPEG")
    at.camera_input(key="try_camera").set_value(("photo.jpg", buffer.getvalue(), "image/jpeg")).run()
    assert "### blue" in [m.value for m in at.markdown]


def test_try_says_in_plain_words_when_a_photo_is_unlike_every_labelled_one(colours):
    add_images(colours, RED, 3, concept="red", prefix="known-red", seed=60)
    add_images(colours, BLUE, 3, concept="blue", prefix="known-blue", seed=70)
    train(colours)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::8] = 255
    buffer = io.BytesIO()
    Image.fromarray(stripes).save(buffer, format="PNG")
    at = run_app("try", "colours")
    at.file_uploader(key="try_file").set_value(("stripes.png", buffer.getvalue(), "image/png")).run()
    assert not at.exception
    assert "### Not like anything you labelled" in [m.value for m in at.markdown]
    (reason,) = [plain(c.value) for c in at.caption if "unlike" in c.value]
    assert reason.startswith("This looks unlike the photos you labelled (similarity ") and reason.endswith("similar to the rest).")


def test_try_follows_each_concepts_threshold(colours):
    from core.learning import set_threshold

    add_images(colours, RED, 3, concept="red", prefix="known-red", seed=60)
    add_images(colours, BLUE, 3, concept="blue", prefix="known-blue", seed=70)
    version = train(colours).version
    for threshold, headline in [(0.0, "### red"), (1.0, "### None of the concepts passes its threshold")]:
        set_threshold(colours, version, "red", threshold)
        set_threshold(colours, version, "blue", 1.0)
        at = run_app("try", "colours")
        at.file_uploader(key="try_file").set_value(("new.png", png(RED, 99), "image/png")).run()
        assert not at.exception
        assert headline in [m.value for m in at.markdown]


def test_names_from_people_are_escaped():
    project = create_project("demo", "tiny")
    files = [("**bold** [link](javascript:x) <i>x.png", png(RED))]
    ingest(project, read_uploads(files), concept="*star*")
    at = run_app("label", "demo")
    assert r":blue-badge[\*star\* · 1 yes · 0 no]" in texts(at)  # Markdown: escaped
    (card,) = component_data(at, "grid_")["items"]  # the grid sets names as text, never as markup: as typed
    assert card["name"] == "**bold** [link](javascript:x) <i>x.png" and card["badges"] == [["*star*", "yes"]]


@pytest.mark.parametrize(
    "name, escaped",
    [
        ("photo 1.jpg", "photo 1.jpg"),  # nothing to do
        ("**bold** _it_ ~~gone~~ `code`", r"\*\*bold\*\* \_it\_ \~\~gone\~\~ \`code\`"),
        ("![t](http://x.invalid/t.png)", "\\!\\[t\\]\\(http\\:\u2060//x.invalid/t.png\\)"),
        ("www.evil.com", "www\u2060.evil.com"),  # an autolink: backslashes cannot stop it, the word joiner does
        ("WWW.Evil.com", "WWW\u2060.Evil.com"),
        ("https://evil.com", "https\\:\u2060//evil.com"),
        ("me@evil.com", "me\u2060@evil.com"),
        (":smile: :material/home:", "\\:\u2060smile\\: \\:\u2060material/home\\:"),
        ("$x^2$", r"\$x\^2\$"),
        (":red[alarm]", "\\:\u2060red\\[alarm\\]"),
        ("<b>x</b> &amp;", r"\<b\>x\</b\> \&amp;"),
        ("# heading", r"\# heading"),
        ("1. first", r"1\. first"),
        ("- item", r"\- item"),
        ("two\nlines", "two lines"),
        ("a: b", "a\\: b"),  # a colon before a space starts nothing: no joiner
    ],
)
def test_md_escapes_every_markup_a_name_could_hold(name, escaped):
    from pages.common import md

    assert md(name) == escaped
    assert plain(md(name)) == name.replace("\n", " ")  # and the person sees exactly what they typed


def test_report_fields_become_tables_of_plain_cells():
    from pages.common import report_rows

    metrics = [
        {"space": "img", "folds": 3, "concepts": [{"concept": "a", "f1": 0.91234}, {"concept": "b", "f1": 0.5}], "labels": ["a", "b"]}
    ]
    assert report_rows(metrics) == [
        {"space": "img", "folds": 3, "concept": "a", "f1": 0.912},
        {"space": "img", "folds": 3, "concept": "b", "f1": 0.5},
    ]
    choices = {"img": [{"concept": "a", "scores": {"linear": 0.8}}]}
    assert report_rows(choices) == [{"": "img", "concept": "a", "scores linear": 0.8}]
    assert report_rows({"img": {"a": 0.25}}) == [{"": "img", "name": "a", "value": 0.25}]
    assert report_rows({"accuracy": 0.9, "n": 4}) == [{"accuracy": 0.9, "n": 4}]
    assert report_rows({"img": {"ids": [1, 2], "probabilities": [[0.5]]}}) == []  # raw arrays are for programs
    assert report_rows([1, 2, 3]) == [] and report_rows("text") == []


# -- the Train page's evaluation views, and sharing a model ----------------------------------------


@pytest.fixture
def trained(colours):
    """The colours project with 4 red and 4 blue images labelled, trained once."""
    from core.views.gallery import label_inputs

    records = [colours.store.get_input(i) for i in range(1, 9)]
    label_inputs(colours, [r.id for r in records if r.name.startswith("red")], "red", 1)
    label_inputs(colours, [r.id for r in records if r.name.startswith("blue")], "blue", 1)
    return colours, train(colours)


def table_with(at: AppTest, column: str):
    """The page's table that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def outside_details(at: AppTest) -> str:
    """The page's words and table cells, leaving out what its toggles ("Details", "Settings used") hold."""
    found, stack = [], list(at._tree.children.values())
    while stack:
        node = stack.pop()
        if getattr(node, "type", "") == "expander":
            continue
        if getattr(node, "type", "") in ("markdown", "caption", "info", "success", "warning", "error", "metric"):
            found.append(f"{getattr(node, 'label', '')} {node.value}")
        elif getattr(node, "type", "") in ("arrow_data_frame", "dataframe"):
            found.append(node.value.to_csv())
        stack += list(getattr(node, "children", {}).values())
    return "\n".join(found)


def charts(at: AppTest) -> list[dict]:
    """The Vega-Lite specs of the page's Altair charts."""
    import json

    found, stack = [], list(at._tree.children.values())
    while stack:
        node = stack.pop()
        if getattr(node, "type", "") == "vega_lite_chart":
            found.append(json.loads(node.proto.spec))
        stack += list(getattr(node, "children", {}).values())
    return found


@pytest.mark.parametrize("exclusive, overall, columns", [(False, "Macro F1", "outcome"), (True, "Accuracy", "predicted")])
def test_train_page_shows_quality_table_and_confusion_chart(exclusive, overall, columns):
    project = labelled_demo(4, exclusive)
    project.store.create_concept("green")  # no examples: not trained, so not in the quality table
    evaluation = train(project).evaluations[0]
    at = run_app("train", "demo")
    quality = next(d.value for d in at.dataframe if "Precision" in d.value.columns)
    assert list(quality["Concept"]) == ["blue", "red"]
    assert list(quality["Examples"]) == [4, 4] and "Note" not in quality.columns  # everything was measured
    assert list(quality["F1"]) == [evaluation.concept("blue").f1, evaluation.concept("red").f1]
    metrics = {m.label: m.value for m in at.metric}
    assert overall in metrics
    (chart,) = charts(at)
    right, wrong, empty, counts = chart["layer"]
    assert right["mark"]["type"] == wrong["mark"]["type"] == "rect" and counts["encoding"]["text"]["field"] == "count"
    assert empty["mark"]["color"] == "#f0f2f6"  # a mistake nobody made: grey, not orange
    assert right["encoding"]["x"]["title"] == columns and right["encoding"]["y"]["sort"] == ["blue", "red"]


@pytest.mark.parametrize("exclusive", [False, True])
def test_train_says_examples_and_heads_in_the_words_label_and_the_result_use(exclusive):
    """Label's "4 yes · 2 no" is Train's; the heads the plan says it tries are named as the result names the one kept."""
    from core.views.gallery import label_inputs

    project = labelled_demo(4, exclusive)
    others = add_images(project, (30, 200, 40), 2, prefix="green", seed=40).added
    label_inputs(project, others, "red", -1)
    at = run_app("label", "demo")
    assert ":blue-badge[red · 4 yes · 2 no]" in texts(at)
    at.switch_page("pages/train.py").run()
    plan = at.dataframe[0].value.set_index("Concept")
    assert plan.loc["red", "Examples"] == "4 yes · 2 no · 4 of other concepts"  # the blue ones teach red what it is not
    tried = "nearest neighbour, prototype, linear, example cache" + (", linear and nearest neighbour" if exclusive else "")
    assert plan.loc["red", "Head"] == f"tries {tried.rsplit(', ', 1)[0]} and {tried.rsplit(', ', 1)[1]}; keeps the best"
    click(at, "Train")
    result = table_with(at, "How it did").set_index("Concept")
    kept = result.loc["red", "Head kept"]
    assert kept.endswith(f"(the best of {4 + exclusive} tried)") and kept.split(" (")[0] in plan.loc["red", "Head"]
    assert result.loc["red", "How it did"].startswith("Right on ")
    shown = outside_details(at)
    assert "Right on " in shown and not any(word in shown for word in ("ROC", "F1", "Precision", "fold", "margin"))
    details = [e for e in at.expander if e.label == "Details"]
    assert details and any(m.label in ("Macro F1", "Accuracy") for m in details[0].metric)  # the figures, behind a toggle
    assert any(t.value.startswith("The right concept for 8 of 8 labelled inputs") for t in at.markdown) == exclusive


def test_one_example_each_says_too_few_to_measure():
    train(labelled_demo(1))
    at = run_app("train", "demo")
    quality = next(d.value for d in at.dataframe if "Precision" in d.value.columns)
    assert set(table_with(at, "How it did")["How it did"]) == {"Too few examples to measure"}
    assert quality["Precision"].isna().all() and not charts(at) and not at.slider


def test_threshold_slider_updates_precision_live_and_saving_changes_predictions(trained):
    from core.learning import get_threshold_overrides
    from core.prediction import predict

    project, result = trained
    best = result.evaluations[0].concept("red").threshold
    at = run_app("train", "colours")
    at.selectbox(key="tune_pick_1").select(1).run()  # red
    assert at.slider[0].label == "Threshold for red" and at.slider[0].value == round(best, 3)
    before = {m.label: m.value for m in at.metric}
    assert before["Precision"] == "100%" and before["Recall"] == "100%"
    at.slider[0].set_value(0.0).run()
    after = {m.label: m.value for m in at.metric}
    assert after["Precision"] == "50%" and after["Recall"] == "100%" and after["Found"] == "4 of 4"
    click(at, "Save threshold")
    red = project.store.concept_id("red")
    assert get_threshold_overrides(project, 1) == {red: 0.0}
    assert "red now matches at 0.000 or above" in at.success[0].value
    (blue_image,) = read_uploads([("new.png", png(BLUE, 77))])
    scores = {c.concept: c for c in next(predict(project, [blue_image])).concepts}
    assert scores["red"].passes and scores["red"].threshold == 0.0
    assert "(yours, set on this version)" in texts(at)
    click(at, "Reset to training's threshold")
    assert get_threshold_overrides(project, 1) == {}  # the hand-set one is gone: training's own is in force
    assert at.slider[0].value == round(best, 3)
    scores = {c.concept: c for c in next(predict(project, [blue_image])).concepts}
    assert not scores["red"].passes


def test_the_next_version_keeps_a_saved_threshold_and_says_whose_it_is(trained):
    from core.learning import set_threshold

    project, _ = trained
    set_threshold(project, 1, "red", 0.7)
    train(project)
    at = run_app("train", "colours")
    at.selectbox(key="tune_pick_2").select(1).run()  # red, in version 2
    assert at.slider[0].value == 0.7
    assert "(yours, set on version 1 and kept since: reset it to use this version's own)" in texts(at)


def test_relabel_a_misclassified_input_in_place(trained):
    project, _ = trained
    at = run_app("train", "colours")
    at.selectbox(key="tune_pick_1").select(1).run()
    assert "Nothing: every labelled input lands on the right side" in texts(at)
    at.slider[0].set_value(0.0).run()  # every blue image is now wrongly matched as red
    assert "Wrongly matched: not labelled red" in texts(at)
    fixes = [b for b in at.button if b.key and b.key.startswith("fix_1_")]
    assert len(fixes) == 4
    wrong = int(fixes[0].key.removeprefix("fix_1_"))
    assert project.store.get_input(wrong).name.startswith("blue")
    fixes[0].click().run()
    assert project.store.labels_of(wrong) == {"blue": 1, "red": 1}
    assert "Train again to apply the fix" in at.success[0].value
    at.button(key=f"fix_-1_{wrong}").click().run()
    assert project.store.labels_of(wrong) == {"blue": 1, "red": -1}
    at.button(key=f"fix_None_{wrong}").click().run()
    assert project.store.labels_of(wrong) == {"blue": 1}


@pytest.mark.parametrize("exclusive", [False, True])
def test_after_remove_label_a_miss_is_offered_the_concept_the_model_took_it_for(exclusive):
    project = labelled_demo(4, exclusive)
    (wrong,) = add_images(project, BLUE, 1, concept="red", prefix="oops", seed=30).added  # a blue photo labelled red
    train(project)
    at = run_app("train", "demo")
    at.selectbox(key="tune_pick_1").select(1).run()  # red
    assert "taken for blue" in [c.value for c in at.caption if "taken for" in c.value][0]
    at.button(key=f"fix_None_{wrong}").click().run()
    assert project.store.labels_of(wrong) == {}
    assert any("The model took it for **blue**" in m.value for m in at.markdown)
    click(at, "Label it blue instead")
    assert project.store.labels_of(wrong) == {"blue": 1}
    assert "oops0.png is now labelled blue" in plain(at.success[0].value)
    assert not [b for b in at.button if b.label == "Label it blue instead"]  # done: offered no more


def test_relabelling_a_concept_renamed_since_training_does_not_recreate_it(trained):
    project, _ = trained
    at = run_app("train", "colours")
    at.selectbox(key="tune_pick_1").select(1).run()
    at.slider[0].set_value(0.0).run()
    project.store.rename_concept("red", "crimson")
    wrong = next(b for b in at.button if b.key and b.key.startswith("fix_1_"))
    wrong.click().run()
    assert "There is no concept red any more" in at.error[0].value
    assert sorted(n for _, n in project.store.list_concepts()) == ["blue", "crimson"]


def test_mistakes_are_shown_a_few_at_a_time():
    train(labelled_demo(10, blue_seed=20))
    at = run_app("train", "demo")
    at.selectbox(key="tune_pick_1").select(1).run()
    at.slider[0].set_value(0.0).run()  # all 10 blue images are wrongly matched as red
    assert "(10)" in texts(at)
    assert len([b for b in at.button if b.key and b.key.startswith("fix_1_")]) == 8
    click(at, "Show more (2 not shown)")
    assert len([b for b in at.button if b.key and b.key.startswith("fix_1_")]) == 10
    assert not [b for b in at.button if b.label.startswith("Show more")]


def test_export_from_the_page_then_import_into_another_project(monkeypatch, trained):
    from core.exchange import read_model_file

    project, _ = trained
    made = {}
    original = st.download_button

    def spy(label, data, **kwargs):
        made[label] = (data, kwargs)
        return original(label, data, **kwargs)

    monkeypatch.setattr(st, "download_button", spy)
    at = run_app("train", "colours")
    make, kwargs = made["Download the model file"]
    assert kwargs["file_name"] == "colours-v1.conceptlab.zip" and kwargs["mime"] == "application/zip"
    data = make()  # built only now, as when the button is clicked
    model_file = read_model_file(data)
    assert sorted(model_file.concepts) == ["blue", "red"] and model_file.source["project"] == "colours"
    create_project("other", "tiny")
    at = run_app("train", "other")  # no concepts yet: importing is how this project gets a model
    at.file_uploader(key="import_file").set_value(("colours-v1.conceptlab.zip", data, "application/zip"))
    click(at, "Import")
    other = open_project("other")
    assert [v[0] for v in other.store.list_versions()] == [1]
    assert "The model file is now version 1, in use" in at.success[0].value
    assert sorted(n for _, n in other.store.list_concepts()) == ["blue", "red"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"not a zip at all", "Could not use model.zip: not a conceptlab model file (not a zip archive)."),
        (b"", "Could not use model.zip: the model file is empty."),
    ],
)
def test_a_bad_model_file_is_one_error_sentence(trained, data, message):
    at = run_app("train", "colours")
    at.file_uploader(key="import_file").set_value(("model.zip", data, "application/zip"))
    click(at, "Import")
    assert [plain(e.value) for e in at.error] == [message]
    assert [v[0] for v in trained[0].store.list_versions()] == [1]


@pytest.mark.parametrize(
    "address, opened, refused, sidebar",
    [
        ("127.0.0.1", False, False, "Only this computer can open the studio."),
        ("0.0.0.0", False, True, None),
        ("", False, True, None),  # Streamlit's own default: every interface
        ("0.0.0.0", True, False, "Open to anyone who can reach every network interface, port 8501"),
    ],
)
def test_the_studio_refuses_a_network_address_unless_opened_loudly(monkeypatch, address, opened, refused, sidebar):
    from streamlit import config

    from core.network import OPEN_TO_NETWORK_ENV

    create_project("demo", "tiny")
    monkeypatch.setenv(OPEN_TO_NETWORK_ENV, "1" if opened else "0")
    before = config.get_option("server.address")
    config.set_option("server.address", address)
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.session_state.project = "demo"
        at.run()
    finally:
        config.set_option("server.address", before)
    assert not at.exception
    if refused:
        (error,) = at.error
        assert "The studio will not serve on every network interface with accounts off" in plain(error.value)
        assert not at.sidebar.selectbox and "Upload" not in texts(at)  # nothing of any project is shown
    else:
        assert sidebar in plain(" ".join(c.value for c in at.sidebar.caption))


# -- accounts on: signing in, and roles in the studio ---------------------------------------------


@pytest.fixture
def accounts(monkeypatch, data_home):
    """Accounts on, with an admin, a labeller and a viewer of project 'colours' (4 red images)."""
    from core.access import Role, UserStore, set_member
    from core.network import ACCOUNTS_ENV

    monkeypatch.setenv(ACCOUNTS_ENV, "1")
    users = UserStore()
    users.add_user("root", "root's own password", admin=True)
    for name in ("lena", "vic"):
        users.add_user(name, f"{name}'s own password")
    project = create_project("colours", "tiny")
    add_images(project, RED, 4, prefix="red")
    set_member(project, "lena", Role.LABELLER)
    set_member(project, "vic", Role.VIEWER)
    return users, project


def sign_in(at: AppTest, name: str, password: str | None = None) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password or f"{name}'s own password")
    return click(at, "Sign in")


def test_nothing_shows_before_a_sign_in_and_a_wrong_password_says_only_that(accounts):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert [t.value for t in at.title] == ["Sign in to conceptlab"] and not at.sidebar.selectbox
    sign_in(at, "lena", "not her password")
    assert [plain(e.value) for e in at.error] == ["Wrong user name or password."]
    assert at.text_input(key="sign_in_password").value == ""  # the password is not kept
    sign_in(at, "lena")
    assert not at.exception and at.sidebar.selectbox(key="project_picker").value == "colours"
    assert ":material/person: Signed in as **lena** · labeller of colours" in [c.value for c in at.sidebar.caption]
    assert not [b for b in at.sidebar.button if b.label == "New project"]  # creating projects is an admin's
    click(at, "Sign out")
    assert [t.value for t in at.title] == ["Sign in to conceptlab"]


def test_a_viewer_sees_no_uploader_and_a_crafted_label_action_is_refused(accounts):
    _, project = accounts
    at = AppTest.from_file(APP, default_timeout=60).run()
    sign_in(at, "vic")
    assert "vic is a viewer of 'colours': to add inputs takes a labeller or above." in [plain(i.value) for i in at.info]
    assert not at.file_uploader
    at.switch_page("pages/label.py").run()
    with acting_as(None):  # this computer's own user (the studio's engine now asks its browser sessions)
        project.store.create_concept("red")
    at.run()
    at.selectbox(key="label_concept").set_value("red").run()
    grid_action(at, "yes", [1, 2])  # what the picture grid would send, had the viewer clicked its button
    assert "vic is a viewer of 'colours': to label inputs takes a labeller or above." in [plain(e.value) for e in at.error]
    assert project.store.labels_of_inputs([1, 2]) == {1: {}, 2: {}}


def test_a_one_time_password_must_be_replaced_first(accounts):
    users, _ = accounts
    one_time = users.add_user("newbie")
    at = AppTest.from_file(APP, default_timeout=60).run()
    sign_in(at, "newbie", one_time)
    assert [t.value for t in at.title] == ["Choose your own password"]
    at.text_input(key="new_password").input("my very own password")
    at.text_input(key="new_password_again").input("my very own password")
    click(at, "Set my password")
    assert not users.get_user("newbie").must_change
    assert users.sign_in("newbie", "my very own password").name == "newbie"
    assert "You are not a member of any project yet: ask an admin to add you." in [i.value for i in at.info]


def test_owners_see_the_project_log_and_labellers_do_not(accounts):
    from core.access import Role, set_member

    users, project = accounts
    users.add_user("olga", "olga's own password")
    from core.views.gallery import label_inputs

    with acting_as(None):
        set_member(project, "olga", Role.OWNER)
        label_inputs(project, [1, 2], "red", None)  # a bulk removal: recorded
    at = AppTest.from_file(APP, default_timeout=60).run()
    sign_in(at, "lena")
    assert not [b for b in at.sidebar.button if b.label == "Project log"]
    click(at, "Sign out")
    sign_in(at, "olga")
    click(at, "Project log")
    log = next(d.value for d in at.dataframe if "Who" in d.value.columns)
    assert list(log["What"][:2]) == ["remove labels", "change role"]
    assert log["Details"][1] == "olga: not a member -> owner" and log["Who"][0] == "this computer's user"


def test_a_demo_link_shows_only_the_try_page_of_its_version_until_revoked(trained):
    from core.access import ShareStore

    project, _ = trained
    at = run_app("train", "colours")
    click(at, "Make a demo link")
    (code,) = [c.value for c in at.code]
    token = code.rsplit("share=", 1)[1]
    demo = AppTest.from_file(APP, default_timeout=60)
    demo.query_params["share"] = token
    demo.run()
    assert not demo.exception and [t.value for t in demo.title] == ["Try"]
    assert not demo.sidebar.selectbox and not demo.sidebar.button  # no project picker, no other page
    assert "A demo of colours, version 1" in texts(demo)
    demo.file_uploader(key="try_file").set_value(("new.png", png(RED, 99), "image/png")).run()
    assert "### red" in [m.value for m in demo.markdown]
    assert "Why: the closest labelled examples" not in texts(demo)  # no labelled inputs shown
    (share,) = ShareStore().list_shares(project)
    with acting_as(None):
        ShareStore().revoke_share(project, share.id)
    demo.query_params.clear()  # taking the link off the address does not leave the demo
    demo.run()
    assert [plain(e.value) for e in demo.error] == ["This demo link has expired or was revoked: ask whoever shared it for a new one."]


@pytest.fixture
def four_people(tmp_path):
    """A faces project "four" of four of the five fixture people, trained: Kit Harington is a stranger to it."""
    import shutil

    from core.inputs import ReadConfig, read_inputs

    from .faces import FACES

    for person in ("alex_lacamoire", "biden", "obama", "rose_leslie"):
        shutil.copytree(FACES / "train" / person, tmp_path / "train" / person)
    project = create_project("four", "faces")
    ingest(project, read_inputs([tmp_path / "train"], ReadConfig(labels_from_folders=True)))
    train(project)
    return project


def test_try_boxes_and_names_every_face_of_a_photo(four_people, monkeypatch):
    import core.views.faces

    from .faces import FACES, KIT_WITH_ROSE

    drawn = []
    original = core.views.faces.draw_faces
    monkeypatch.setattr(core.views.faces, "draw_faces", lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    at = run_app("try", "four")
    at.file_uploader(key="try_file").set_value(("kit_with_rose.jpg", KIT_WITH_ROSE.read_bytes(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    lines = [plain(m.value) for m in at.markdown]
    assert "**2 faces in this photo**" in lines
    answers = [line for line in lines if line[:3] in ("1. ", "2. ")]
    assert len(answers) == 2 and answers[0].startswith("1. **rose_leslie** (") and answers[1].startswith("2. **unknown**")
    shown = [image for image in at.get("image") if [plain(c) for c in image.captions] == ["kit_with_rose.jpg"]]
    assert len(shown) == 1 and len(drawn) == 1  # the annotated photo, once (the cards below show labelled faces)
    pixels = np.asarray(drawn[0])
    scale = drawn[0].width / Image.open(KIT_WITH_ROSE).width
    results = at.session_state.try_result[1]
    for result, colour in zip(results, (core.views.faces.COLOURS["named"], core.views.faces.COLOURS["unknown"])):
        left, top, right, bottom = (round(v * scale) for v in result.face["box"])
        assert tuple(pixels[(top + bottom) // 2, left]) == colour and tuple(pixels[(top + bottom) // 2, right - 1]) == colour
    # Details of one face at a time: the second is the stranger.
    next(s for s in at.selectbox if s.label == "Details of face").set_value(1).run()
    assert "### Not like anything you labelled" in [m.value for m in at.markdown]
    # A photo of one known face: one answer, named.
    at.file_uploader(key="try_file").set_value(("obama1.jpg", (FACES / "test/obama1.jpg").read_bytes(), "image/jpeg")).run()
    lines = [plain(m.value) for m in at.markdown]
    assert "**1 face in this photo**" in lines and any(line.startswith("1. **obama** (") for line in lines)


def test_train_shows_each_persons_false_accepts_and_rejects(four_people):
    at = run_app("train", "four")
    assert "As a face check" in texts(at)
    table = next(d.value for d in at.dataframe if "Strangers let in (false accepts)" in d.value.columns)
    assert list(table["Person"]) == ["alex_lacamoire", "biden", "obama", "rose_leslie"]
    assert set(table["Strangers let in (false accepts)"]) == {"0% (0 of 6)"} and set(table["Own faces turned away (false rejects)"]) == {
        "0% (0 of 2)"
    }
    # The slider moves the figures: at 0 every stranger is let in, at 1 every own face turned away.
    slider = next(s for s in at.slider if s.key.startswith("threshold_"))
    slider.set_value(0.0).run()
    assert "false accepts 100% (6 of 6) of the other people's faces; false rejects 0% (0 of 2)" in plain(texts(at))
    next(s for s in at.slider if s.key.startswith("threshold_")).set_value(1.0).run()
    assert "false accepts 0% (0 of 6) of the other people's faces; false rejects 100% (2 of 2)" in plain(texts(at))
