"""The whole studio in a real browser: `streamlit run app.py` driven by headless Chromium.

Create a project (``lite``: real, offline embeddings), upload real photos (crops of skimage's
``chelsea`` the cat and ``coffee``), label, train, try a new photo, and read the answer off the
page. A screenshot of every page is saved in the test's temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.exchange import read_model_file

from .photos import photo_variants

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_MS = 90_000  # the first upload loads torch and the lite model in the server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (see .ci/run)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _streamlit(home: Path, log_path: Path, *options: str, port: int | None = None) -> Iterator[str]:
    """A fresh studio (`conceptlab studio`, which becomes `streamlit run app.py`) on a free port, serving ``home``."""
    port = port or _free_port()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env["STREAMLIT_SERVER_HEADLESS"] = "true"  # no browser of its own to open
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "core", "studio", "--port", str(port), *options]  # what `make run` runs
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(log_path.read_text()) from None
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture
def server(tmp_path, data_home):
    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        try:
            yield browser
        finally:
            browser.close()


def _photos(folder: Path, photo: str, count: int, seed: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(photo_variants(photo, count, seed)):
        path = folder / f"{photo}-{seed}-{i}.jpg"
        image.save(path, quality=90)
        paths.append(str(path))
    return paths


def test_create_upload_label_train_try(server, browser, tmp_path, data_home):
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    main = page.get_by_test_id("stMain")

    def shoot(name: str) -> None:
        # The "Running…" widget is there while the script runs: wait for the page to be complete.
        page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
        page.wait_for_timeout(700)  # let images and charts finish drawing
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    def nav(name: str) -> None:
        page.get_by_test_id("stHeader").get_by_role("link", name=name, exact=True).click()

    def choose(label: str, option: str, within=main) -> None:
        """Pick (or type a new) option in a selectbox, once the script has finished its last rerun.

        Typing while a rerun redraws the page can land in the widget being replaced and be lost.
        """
        page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
        box = within.get_by_role("combobox", name=label)
        box.click()
        box.fill(option)
        box.press("Enter")

    def add_files(paths: list[str], how: str, concept: str | None = None, total: int = 0) -> None:
        files_tab = main.get_by_role("tabpanel").first
        files_tab.locator("input[type=file]").set_input_files(paths)
        for path in paths:
            expect(files_tab.get_by_text(Path(path).name)).to_be_visible()
        files_tab.get_by_text(how, exact=True).click()
        if concept:
            choose("Concept", concept, files_tab)
        files_tab.get_by_role("button", name=f"Add {len(paths)} files").click()
        expect(page.get_by_test_id("stSidebar").get_by_text(f"{total} inputs")).to_be_visible()

    try:
        # A first visit: the welcome screen creates a project; CLIP is not here, so lite is chosen.
        page.goto(server)
        expect(main.get_by_text("Welcome to conceptlab")).to_be_visible()
        expect(main.get_by_text("CLIP weights are not on this machine")).to_be_visible()
        shoot("1-welcome")
        main.get_by_label("Project name").fill("Pets")
        main.get_by_role("button", name="Create project").click()
        expect(main.get_by_text("This project is empty")).to_be_visible()

        # Upload: five cat photos labelled as a batch, five coffee photos without a label.
        add_files(_photos(tmp_path / "cat", "chelsea", 5, seed=1), "All show a concept", "cat", total=5)
        expect(main.get_by_test_id("stMetric").filter(has_text="Added")).to_contain_text("5")
        add_files(_photos(tmp_path / "coffee", "coffee", 5, seed=2), "No label", total=10)
        shoot("2-upload")

        # Label: the unlabelled ones, all at once, as a new concept.
        nav("Label")
        expect(main.get_by_role("heading", name="Label")).to_be_visible()
        choose("Show", "Unlabelled")
        expect(main.get_by_text("5 inputs match")).to_be_visible()
        main.get_by_role("button", name="Select all on this page").click()
        expect(main.get_by_text("5 selected")).to_be_visible()
        choose("Label the selected inputs", "coffee")
        main.get_by_role("button", name="Is coffee").click()
        expect(main.get_by_text("Labelled 5 inputs as coffee")).to_be_visible()
        choose("Show", "Everything")
        expect(main.get_by_text("10 inputs match")).to_be_visible()
        shoot("3-label")

        # Train.
        nav("Train")
        expect(main.get_by_text("What training will do")).to_be_visible()
        main.get_by_role("button", name="Train", exact=True).click()
        expect(main.get_by_text("Version 1 trained")).to_be_visible()
        expect(main.get_by_text("How well each concept does")).to_be_visible()
        expect(main.get_by_text("What the model mistook for what")).to_be_visible()
        expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible()  # the confusion chart
        expect(main.get_by_role("slider").first).to_be_visible()  # a threshold slider
        shoot("4-train")
        # The model file is built when the button is clicked, on the server's own thread.
        main.get_by_text("Share this model").click()
        with page.expect_download() as download:
            main.get_by_role("button", name="Download the model file").click()
        model_file = read_model_file(download.value.path())
        assert sorted(model_file.concepts) == ["cat", "coffee"] and model_file.source["version"] == 1

        # Try a cat photo the model has never seen.
        nav("Try")
        # The uploader must be the Try page's, drawn and idle: a file set during the page's first run is lost.
        expect(main.get_by_role("region", name="An image, a video or a .txt file")).to_be_visible()
        page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
        main.locator("input[type=file]").first.set_input_files(_photos(tmp_path / "new", "chelsea", 1, seed=99))
        expect(main.get_by_role("heading", name="cat", exact=True)).to_be_visible()
        expect(main.get_by_text("Why: the closest labelled examples")).to_be_visible()
        shoot("5-try")
    except BaseException:
        page.screenshot(path=str(shots / "failure.png"), full_page=True)
        raise
    print(f"screenshots in {shots}")


def test_first_prediction_after_a_fresh_start(browser, tmp_path, data_home):
    """A trained project, a new server process, one photo on the Try page: the answer, and how long it took.

    The times go to ``timing.log`` in the test's folder and to the test's output (pytest -s shows them).
    """
    from core.ingestion import ingest
    from core.inputs import ReadConfig, read_inputs
    from core.learning import train
    from core.storage.projects import create_project

    for concept, photo in (("cat", "chelsea"), ("coffee", "coffee")):
        _photos(tmp_path / "train" / concept, photo, 4, seed=3)
    project = create_project("Pets", "lite")
    ingest(project, read_inputs([tmp_path / "train"], ReadConfig(labels_from_folders=True)))
    train(project)
    query = _photos(tmp_path / "new", "chelsea", 1, seed=99)
    started = time.monotonic()
    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        answering = time.monotonic()
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        main = page.get_by_test_id("stMain")
        page.goto(f"{url}/try")
        file_input = main.locator("input[type=file]").first
        file_input.wait_for(state="attached")
        page_shown = time.monotonic()
        file_input.set_input_files(query)
        sync_api.expect(main.get_by_role("heading", name="cat", exact=True)).to_be_visible(timeout=TIMEOUT_MS)
        answered = time.monotonic()
    timing = (
        f"server start to /_stcore/health: {answering - started:.1f} s\n"
        f"Try page shown: {page_shown - answering:.1f} s later\n"
        f"first prediction after a fresh start: {answered - page_shown:.1f} s from the upload, "
        f"{answered - started:.1f} s from starting the server\n"
    )
    (tmp_path / "timing.log").write_text(timing)
    print(timing)


# Concept and file names that would be markup if a page let them: each must show as the very text typed.
HOSTILE_NAMES = [
    "![t](http://attacker.invalid/t.png)",  # an image every visitor's browser would fetch
    "[click](javascript:alert(1))",
    "[here](https://attacker.invalid/)",
    "www.evil.example",  # an autolink, which backslashes cannot stop
    "mail me@evil.example",
    "$x^2$ and $$y$$",  # KaTeX
    ":red[alarm] :blue-background[calm]",  # colour directives
    "<b>bold</b> <img src=x>",  # HTML
    ":smile: :material/home:",  # emoji and icon shortcodes
    "**loud** _slanted_ ~~gone~~ `code`",
]
# File names cannot hold '/', so no URL with a path.
HOSTILE_FILE_NAMES = ["[click](javascript:alert(1)) www.evil.example.txt", "$x^2$ :smile: **loud**.txt", "<b>bold</b> me@evil.example.txt"]
# What none of the pages may hold, whatever the names: links, remote images, formulas, shortcodes turned into symbols.
_INTERPRETED = (
    "a[href*='attacker.invalid'], a[href^='javascript'], a[href*='evil.example'], a[href^='mailto'], "
    "img[src*='attacker.invalid'], .katex, main strong:text('loud'), main em:text('slanted'), main del, main code:text('code')"
)


def test_names_that_look_like_markup_are_shown_as_typed_on_every_page(browser, tmp_path, data_home):
    from core.ingestion import ingest
    from core.inputs import read_texts, read_uploads
    from core.learning import train
    from core.storage.projects import create_project

    project = create_project("www.evil.example", "tiny")  # project names may hold dots: an autolink in the sidebar
    files = [(name, f"note {i} about a topic".encode()) for i, name in enumerate(HOSTILE_FILE_NAMES)]
    ingest(project, read_uploads(files))
    for i, name in enumerate(HOSTILE_NAMES):
        ingest(project, read_texts([f"first {i} example", f"second {i} example"], concept=name))
    train(project)
    requests: list[str] = []
    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("request", lambda request: requests.append(request.url))
        main = page.get_by_test_id("stMain")

        def settled_text(last: str) -> str:
            """The page's text once ``last`` (text near the end of the page) shows and the script has finished."""
            sync_api.expect(main.get_by_text(last).first).to_be_visible(timeout=TIMEOUT_MS)
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
            page.wait_for_timeout(500)
            assert page.locator(_INTERPRETED).count() == 0, page.locator(_INTERPRETED).first.evaluate("e => e.outerHTML")
            widgets = " ".join(page.locator(".cl-root").all_inner_texts())  # the Label page's grid, in its own shadow DOM
            return (page.inner_text("body") + widgets).replace("\u2060", "")  # the word joiners md() puts in are invisible

        def nav(name: str) -> None:
            page.get_by_test_id("stHeader").get_by_role("link", name=name, exact=True).click()

        seen: dict[str, str] = {}
        page.goto(url)
        seen["home"] = settled_text("In this project")
        nav("Label")
        seen["gallery"] = settled_text("inputs match")
        main.get_by_text("One at a time", exact=True).click()
        seen["one at a time"] = settled_text("Skip")
        main.get_by_text("Suggestions", exact=True).click()
        seen["suggestions"] = settled_text("None are")
        nav("Train")
        seen["train"] = settled_text("version so far")
        nav("Try")
        main.get_by_text("Text", exact=True).click()
        main.get_by_role("textbox", name="Text").fill("first 1 example")
        main.get_by_role("button", name="Predict").click()
        seen["try"] = settled_text("Why:")
        page.close()
    for name in HOSTILE_NAMES:  # one at a time has a button per concept
        assert seen["one at a time"].count(name) >= 1, f"{name!r} is not shown as typed: {seen['one at a time']}"
    # Elsewhere names are in tables and charts (drawn, not text) or in one sentence: the first concept's.
    for where in ("suggestions", "train"):
        assert HOSTILE_NAMES[0] in seen[where], f"{HOSTILE_NAMES[0]!r} is not shown as typed on {where}: {seen[where]}"
    assert HOSTILE_NAMES[1] in seen["try"], seen["try"]  # the answer to a text like its examples
    # File names too: the unlabelled files are the ones "one at a time" shows first.
    assert any(name in seen["one at a time"] for name in HOSTILE_FILE_NAMES), seen["one at a time"]
    assert "Model says ![t](http://attacker.invalid/t.png)" in seen["gallery"]
    assert not [r for r in requests if "attacker.invalid" in r or "evil.example" in r], requests


def test_a_reload_back_and_forward_and_a_shared_link_keep_the_project(browser, tmp_path, data_home):
    from core.storage.projects import create_project

    for name in ("Ants", "Bees"):
        create_project(name, "tiny")
    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        sidebar = page.get_by_test_id("stSidebar")

        def showing(project: str, path: str) -> None:
            sync_api.expect(sidebar.get_by_role("combobox", name="Project")).to_have_value(project, timeout=TIMEOUT_MS)
            sync_api.expect(page).to_have_url(f"{url}{path}?project={project}", timeout=TIMEOUT_MS)

        page.goto(f"{url}/label?project=Bees")  # a shared link to Bees' Label page
        showing("Bees", "/label")
        page.reload()
        showing("Bees", "/label")  # not the first project alphabetically
        page.get_by_test_id("stHeader").get_by_role("link", name="Train", exact=True).click()
        showing("Bees", "/train")
        # Back and forward keep the project. (Which page one step lands on depends on Streamlit: with both
        # cores busy its page change and the address update can make two history entries of one visit.)
        page.go_back()
        sync_api.expect(sidebar.get_by_role("combobox", name="Project")).to_have_value("Bees", timeout=TIMEOUT_MS)
        sync_api.expect(page).to_have_url(re.compile(r"\?project=Bees$"), timeout=TIMEOUT_MS)
        page.go_forward()
        sync_api.expect(sidebar.get_by_role("combobox", name="Project")).to_have_value("Bees", timeout=TIMEOUT_MS)
        sync_api.expect(page).to_have_url(re.compile(r"\?project=Bees$"), timeout=TIMEOUT_MS)
        # Upload lives at the root; /upload typed in the address leads there too, project and all.
        page.goto(f"{url}/upload?project=Bees")
        sync_api.expect(page.get_by_test_id("stMain").get_by_role("heading", name="Upload")).to_be_visible(timeout=TIMEOUT_MS)
        sync_api.expect(page).to_have_url(re.compile(r"/\?project=Bees$"), timeout=TIMEOUT_MS)
        sync_api.expect(sidebar.get_by_role("combobox", name="Project")).to_have_value("Bees", timeout=TIMEOUT_MS)
        assert not page.get_by_text("Page not found").count()
        page.close()


def test_labelling_twenty_photos_and_trying_one_clicks_and_seconds(browser, tmp_path, data_home):
    """Label 20 photos in the gallery (clicks select at once) and one at a time with keys, then try one.

    The clicks, keys and seconds are printed (``pytest -s``) and kept in ``labelling.json`` in the test's
    temporary folder: figures to read, not limits, since this machine is shared.
    """
    import json

    from core.ingestion import ingest
    from core.inputs import read_inputs
    from core.storage.projects import create_project, open_project

    cats = _photos(tmp_path / "cats", "chelsea", 10, seed=5)
    cups = _photos(tmp_path / "cups", "coffee", 10, seed=6)
    for name in ("Gallery", "Keys"):
        project = create_project(name, "lite", exclusive=True)
        ingest(project, read_inputs([Path(p) for p in cats + cups]))
        for concept in ("cat", "coffee"):
            project.store.create_concept(concept)
    figures: dict[str, float] = {}

    def labelled(name: str) -> dict[str, int]:
        project = open_project(name)
        return {r.name: project.store.labels_of(r.id) for r in project.store.list_inputs()}

    def right(labels: dict) -> bool:
        return all(v == ({"cat": 1} if n.startswith("chelsea") else {"coffee": 1}) for n, v in labels.items())

    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        expect = sync_api.expect
        expect.set_options(timeout=TIMEOUT_MS)
        main = page.get_by_test_id("stMain")
        clicks = 0

        def click(locator) -> None:
            nonlocal clicks
            locator.click()
            clicks += 1

        def choose(label: str, option: str) -> None:  # open the list, click the option: two clicks
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
            click(main.get_by_role("combobox", name=label))
            click(page.get_by_role("option", name=option, exact=True))

        # The gallery: pick the concept, click the ten cat photos, label; then the unlabelled rest, all at once.
        page.goto(f"{url}/label?project=Gallery")
        expect(main.get_by_text("20 inputs match")).to_be_visible()
        page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
        start = time.perf_counter()
        choose("Label the selected inputs", "cat")
        expect(main.get_by_role("button", name="Is cat")).to_be_visible()
        for card in page.locator(".cl-card", has_text="chelsea").all():
            click(card)
        expect(main.get_by_text("10 selected")).to_be_visible()
        click(main.get_by_role("button", name="Is cat"))
        expect(main.get_by_text("Labelled 10 inputs as cat")).to_be_visible()
        choose("Show", "Unlabelled")
        expect(main.get_by_text("10 inputs match")).to_be_visible()
        choose("Label the selected inputs", "coffee")
        click(main.get_by_role("button", name="Select all on this page"))
        click(main.get_by_role("button", name="Is coffee"))
        expect(main.get_by_text("Labelled 10 inputs as coffee")).to_be_visible()
        figures["gallery seconds"] = round(time.perf_counter() - start, 2)
        figures["gallery clicks"] = clicks
        assert right(labelled("Gallery"))

        # One at a time: a key per photo (1 cat, 2 coffee), each next photo there at once.
        page.goto(f"{url}/label?project=Keys")
        clicks = 0
        click(main.get_by_text("One at a time", exact=True))
        shown = page.locator(".cl-one .cl-name")
        expect(shown).to_be_visible()
        start, keys, names = time.perf_counter(), 0, []
        while len(names) < 20:
            name = shown.inner_text()
            if names and name == names[-1]:
                page.wait_for_timeout(20)
                continue
            names.append(name)
            page.keyboard.press("1" if name.startswith("chelsea") else "2")
            keys += 1
        figures["one at a time: seconds for 20 keys"] = round(time.perf_counter() - start, 2)
        expect(main.get_by_text("All done")).to_be_visible()
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while not right(labels := labelled("Keys")) and time.monotonic() < deadline:
            time.sleep(0.1)
        figures["one at a time: seconds until all 20 stored"] = round(time.perf_counter() - start, 2)
        figures["one at a time: clicks, keys"] = f"{clicks}, {keys}"
        assert right(labels) and len(set(names)) == 20

        # Train, then Try: from giving a photo to its answer on the page.
        page.get_by_test_id("stHeader").get_by_role("link", name="Train", exact=True).click()
        main.get_by_role("button", name="Train", exact=True).click()
        expect(main.get_by_text("Version 1 trained")).to_be_visible()
        page.get_by_test_id("stHeader").get_by_role("link", name="Try", exact=True).click()
        expect(main.get_by_role("region", name="An image, a video or a .txt file")).to_be_visible()
        for photo, answer, seed in (("chelsea", "cat", 97), ("coffee", "coffee", 98)):
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
            start = time.perf_counter()
            main.locator("input[type=file]").first.set_input_files(_photos(tmp_path / "try", photo, 1, seed=seed))
            expect(main.get_by_role("heading", name=answer, exact=True)).to_be_visible()
            figures[f"try: seconds from photo to answer ({answer})"] = round(time.perf_counter() - start, 2)
        page.close()
    (tmp_path / "labelling.json").write_text(json.dumps(figures, indent=1))
    print("labelling 20 photos and trying one:", json.dumps(figures, indent=1))


def test_a_newcomers_paths_new_project_suggestions_find_similar_threshold_and_video(browser, tmp_path, data_home):
    """Issue #19's paths in a real browser: a new project opens on Upload; suggestions on a fully labelled
    project offer nothing; find-similar leaves a card out; a saved threshold carries into the next version;
    a video on Try is told by when each concept passes."""
    import numpy as np
    from moviepy import ImageSequenceClip

    from core.ingestion import ingest
    from core.inputs import read_uploads
    from core.learning import set_threshold, train
    from core.storage.projects import create_project, open_project

    from .photos import solid_image

    def pngs(colour, count, prefix, seed):
        files = []
        for i in range(count):
            buffer = io.BytesIO()
            solid_image(colour, seed=seed + i).save(buffer, format="PNG")
            files.append((f"{prefix}{i}.png", buffer.getvalue()))
        return read_uploads(files)

    red, blue = (220, 30, 30), (30, 40, 220)
    project = create_project("Colours", "tiny", exclusive=True)
    ingest(project, pngs(red, 4, "red", 0), concept="red")
    ingest(project, pngs(blue, 4, "blue", 10), concept="blue")
    train(project)
    set_threshold(project, 1, "red", 0.7)
    frames = [np.full((48, 64, 3), colour, np.uint8) for colour in (red, red, blue, blue) for _ in range(10)]
    clip = tmp_path / "clip.mp4"
    ImageSequenceClip(frames, fps=10).write_videofile(str(clip), codec="libx264", audio=False, logger=None)
    unsorted = create_project("Unsorted", "tiny")
    ingest(unsorted, pngs(red, 5, "warm", 30))

    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(TIMEOUT_MS)
        expect = sync_api.expect
        expect.set_options(timeout=TIMEOUT_MS)
        main, sidebar = page.get_by_test_id("stMain"), page.get_by_test_id("stSidebar")

        def idle() -> None:
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)

        def nav(name: str) -> None:
            idle()
            page.get_by_test_id("stHeader").get_by_role("link", name=name, exact=True).click()

        # Suggestions in a project where every input is labelled: nothing to accept, and it says so.
        page.goto(f"{url}/label?project=Colours")
        idle()
        main.get_by_text("Suggestions", exact=True).click()
        expect(main.get_by_text("No likely candidates")).to_be_visible()
        assert main.get_by_role("button", name=re.compile(r"^All \d+ are")).count() == 0

        # The next version keeps the threshold saved on version 1, and says whose it is.
        nav("Train")
        main.get_by_role("button", name="Train", exact=True).click()
        expect(main.get_by_text("Version 2 trained")).to_be_visible()
        idle()
        tune = main.get_by_role("combobox", name="Concept", exact=True)
        tune.click()
        tune.fill("red")
        tune.press("Enter")
        expect(main.get_by_text("yours, set on version 1 and kept since")).to_be_visible()
        assert open_project("Colours").store.get_meta("active_version") == "2"

        # Try a video: when each concept passes, not one top score for the clip.
        nav("Try")
        expect(main.get_by_role("region", name="An image, a video or a .txt file")).to_be_visible()
        idle()
        main.locator("input[type=file]").first.set_input_files(str(clip))
        expect(main.get_by_text(re.compile(r"0:00–0:02"))).to_be_visible()
        expect(main.get_by_text(re.compile(r"0:02–0:04"))).to_be_visible()

        # Find similar in another project, leave one card out, label the rest.
        page.goto(f"{url}/label?project=Unsorted")
        expect(main.get_by_text("5 inputs match")).to_be_visible()
        idle()
        page.locator(".cl-card", has_text="warm0.png").get_by_role("button", name="Similar").click()
        expect(main.get_by_text("Most like warm0.png")).to_be_visible()
        idle()
        main.get_by_role("button", name="Leave out").nth(1).click()
        expect(main.get_by_role("button", name="Put back")).to_be_visible()
        idle()
        box = main.get_by_role("combobox", name="Concept")
        box.click()
        box.fill("warm")
        box.press("Enter")
        main.get_by_role("button", name="All 4 are warm").click()
        expect(main.get_by_text("Labelled 4 inputs as warm")).to_be_visible()
        labels = open_project("Unsorted").store.labels_of_inputs([r.id for r in open_project("Unsorted").store.list_inputs()])
        assert sorted(len(v) for v in labels.values()) == [0, 1, 1, 1, 1]

        # A new project opens on Upload, whichever page the form was opened from.
        idle()
        sidebar.get_by_role("button", name="New project").click()
        main.get_by_label("Project name").fill("Fresh")
        main.get_by_role("button", name="Create project").click()
        expect(main.get_by_text("This project is empty")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/\?project=Fresh$"))
        page.close()


def test_two_people_signed_in_at_once_with_their_roles(browser, tmp_path, data_home):
    """Accounts on: a labeller labels while a viewer watches; the viewer has no uploader and the label
    action the viewer's browser sends anyway is refused; a sign-in survives a reload; guessing locks out."""
    from core.access import Role, UserStore, acting_as, set_member
    from core.ingestion import ingest
    from core.inputs import read_texts
    from core.storage.projects import create_project, open_project
    from core.views.gallery import label_inputs

    users = UserStore()
    for name in ("lena", "vic"):
        users.add_user(name, f"{name}'s own password")
    project = create_project("Pets", "tiny")
    ingest(project, read_texts([f"note {i}" for i in range(6)]))
    project.store.create_concept("cat")
    set_member(project, "lena", Role.LABELLER)
    set_member(project, "vic", Role.VIEWER)
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)

    with _streamlit(data_home, tmp_path / "streamlit.log", "--accounts") as url:
        pages = {}
        for name in ("lena", "vic"):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})  # its own cookies: another person
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{url}/label?project=Pets")
            main = page.get_by_test_id("stMain")
            expect(main.get_by_text("Sign in to conceptlab")).to_be_visible()
            main.get_by_label("User name").fill(name)
            main.get_by_role("textbox", name="Password").fill(f"{name}'s own password")
            main.get_by_role("button", name="Sign in").click()
            expect(page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}")).to_be_visible()
            pages[name] = page

        def label_all(name: str) -> None:
            page, main = pages[name], pages[name].get_by_test_id("stMain")
            expect(main.get_by_text("6 inputs match")).to_be_visible()
            page.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
            box = main.get_by_role("combobox", name="Label the selected inputs")
            box.click()
            page.get_by_role("option", name="cat", exact=True).click()
            main.get_by_role("button", name="Select all on this page").click()
            main.get_by_role("button", name="Is cat").click()

        label_all("lena")
        expect(pages["lena"].get_by_test_id("stMain").get_by_text("Labelled 6 inputs as cat")).to_be_visible()
        # The viewer's grid has the same button; what it sends is refused by the engine, and nothing changes.
        with acting_as(None):  # this computer's own user: back to unlabelled
            label_inputs(open_project("Pets"), list(range(1, 7)), "cat", None)
        label_all("vic")
        expect(
            pages["vic"].get_by_test_id("stMain").get_by_text("vic is a viewer of 'Pets': to label inputs takes a labeller")
        ).to_be_visible()
        with acting_as(None):
            assert not any(open_project("Pets").store.labels_of_inputs(range(1, 7)).values())

        # The viewer's Upload page has no uploader; a reload keeps both signed in.
        vic = pages["vic"]
        vic.get_by_test_id("stHeader").get_by_role("link", name="Upload", exact=True).click()
        expect(vic.get_by_text("vic is a viewer of 'Pets': to add inputs takes a labeller or above")).to_be_visible()
        assert vic.locator("input[type=file]").count() == 0
        assert vic.get_by_test_id("stSidebar").get_by_text("Project settings").count() == 0  # no rename or delete
        for page in pages.values():
            page.reload()
        for name, page in pages.items():
            expect(page.get_by_test_id("stSidebar").get_by_text(f"Signed in as {name}")).to_be_visible()

        # Guessing: five wrong passwords, then even the right one waits.
        guesser = browser.new_context().new_page()
        guesser.set_default_timeout(TIMEOUT_MS)
        guesser.goto(url)
        main = guesser.get_by_test_id("stMain")
        for attempt in range(6):
            guesser.get_by_test_id("stStatusWidget").wait_for(state="detached", timeout=TIMEOUT_MS)
            main.get_by_label("User name").fill("lena")
            main.get_by_role("textbox", name="Password").fill("lena's own password" if attempt == 5 else f"guess number {attempt}")
            main.get_by_role("button", name="Sign in").click()
            if attempt < 5:  # each wrong guess counted before the next is typed
                deadline = time.monotonic() + TIMEOUT_MS / 1000
                while users.get_user("lena").failures < attempt + 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                expect(main.get_by_text("Wrong user name or password")).to_be_visible()
        expect(main.get_by_text("Too many failed sign-ins for lena: try again in")).to_be_visible()
        assert users.get_user("lena").locked_until > time.time()
        # Signing out ends the session: the next reload asks again.
        lena = pages["lena"]
        lena.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
        expect(lena.get_by_text("Sign in to conceptlab")).to_be_visible()
        lena.reload()
        expect(lena.get_by_text("Sign in to conceptlab")).to_be_visible()


def test_a_demo_link_opens_only_its_try_page_and_stops_once_revoked(browser, tmp_path, data_home):
    import datetime as dt

    from core.access import ShareStore
    from core.ingestion import ingest
    from core.inputs import read_texts
    from core.learning import train
    from core.storage.projects import create_project

    project = create_project("Notes", "tiny")
    ingest(project, read_texts(["the match ended two nil", "a late goal won it"], concept="sport"))
    ingest(project, read_texts(["simmer the sauce slowly", "bake the bread for an hour"], concept="food"))
    train(project)
    create_project("Secret", "tiny")
    share, token = ShareStore().make_share(project, 1, dt.date.today(), "olga")
    expect = sync_api.expect
    expect.set_options(timeout=TIMEOUT_MS)
    with _streamlit(data_home, tmp_path / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/?share={token}")
        main = page.get_by_test_id("stMain")
        expect(main.get_by_text("A demo of Notes, version 1")).to_be_visible()
        assert page.get_by_test_id("stSidebar").count() == 0 and page.get_by_text("Secret").count() == 0
        main.get_by_text("Text", exact=True).click()
        main.get_by_role("textbox", name="Text").fill("a goal in the last minute")
        main.get_by_role("button", name="Predict").click()
        expect(main.get_by_role("heading", name="sport", exact=True)).to_be_visible()
        assert main.get_by_text("Why: the closest labelled examples").count() == 0
        assert page.get_by_role("link", name="Label").count() == 0  # no way to another page
        ShareStore().revoke_share(project, share.id)
        page.reload()
        expect(main.get_by_text("This demo link has expired or was revoked")).to_be_visible()
        page.close()


OIDC = ROOT / "tests" / "oidc"


@pytest.mark.skipif(
    not shutil.which("node") or not (OIDC / "node_modules" / "oidc-provider").exists(),
    reason="Node.js or the test OpenID provider is not installed (see .ci/run and make test)",
)
def test_single_sign_on_through_a_real_openid_provider(browser, tmp_path, data_home):
    """The studio's "Sign in with single sign-on" against oidc-provider started here: the person it vouches
    for gets an account at the first sign-in, with no role until an owner gives one, and signs out again."""
    from core.access import Role, UserStore, acting_as, set_member
    from core.storage.projects import create_project

    create_project("Pets", "tiny")
    studio_port, provider_port = _free_port(), _free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{studio_port}/oauth2callback"\n'
        'cookie_secret = "a test secret of enough length for the cookie"\n'
        'client_id = "conceptlab"\n'
        'client_secret = "test-secret"\n'
        f'server_metadata_url = "http://127.0.0.1:{provider_port}/.well-known/openid-configuration"\n'
        'client_kwargs = { scope = "openid email profile", prompt = "login" }\n'
    )
    env = {**os.environ, "PORT": str(provider_port), "REDIRECT": f"http://127.0.0.1:{studio_port}/oauth2callback"}
    provider = subprocess.Popen(["node", str(OIDC / "provider.mjs")], cwd=OIDC, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{provider_port}/.well-known/openid-configuration", timeout=2)
                break
            except OSError:
                assert provider.poll() is None and time.monotonic() < deadline, provider.stdout.read().decode()
                time.sleep(0.2)
        os.environ["STREAMLIT_SECRETS_FILES"] = str(secrets)  # read by the studio the fixture starts
        try:
            studio = _streamlit(data_home, tmp_path / "streamlit.log", "--accounts", port=studio_port)
            url = studio.__enter__()
        finally:
            del os.environ["STREAMLIT_SECRETS_FILES"]
        try:
            expect = sync_api.expect
            expect.set_options(timeout=TIMEOUT_MS)
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.get_by_role("button", name="Sign in with single sign-on").click()
            # The provider's own pages: its sign-in form, then its consent.
            page.locator("input[name=login]").fill("alice")
            page.locator("input[name=password]").fill("anything")
            page.locator("button[type=submit]").click()
            page.locator("button[type=submit]").click()
            sidebar = page.get_by_test_id("stSidebar")
            # The name as the provider vouched for it (md() puts an invisible word joiner before the @).
            expect(sidebar.get_by_text(re.compile("Signed in as alice\u2060?@example.org"))).to_be_visible()
            expect(page.get_by_text("You are not a member of any project yet")).to_be_visible()
            users = UserStore()
            assert users.get_user("alice@example.org") is not None  # an account, made at the first sign-in
            with acting_as(None):
                set_member(create_project("Shared", "tiny"), "alice@example.org", Role.VIEWER)
            page.reload()
            expect(sidebar.get_by_text("viewer of Shared")).to_be_visible()  # still signed in, now with a role
            sidebar.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name=re.compile("sign me out", re.I)).click()  # the provider asks, as it should
            expect(page.get_by_role("button", name="Sign in with single sign-on")).to_be_visible()
            page.close()
        finally:
            studio.__exit__(None, None, None)
    finally:
        provider.terminate()
        provider.wait(timeout=10)
