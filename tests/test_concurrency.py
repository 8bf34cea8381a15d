"""Two writers on one project at once: two processes, and threads sharing one ``Project`` (as Streamlit sessions do).

No write may be lost, nobody may see "database is locked", and the FAISS index must agree with storage
during and after. Each writer ingests its own texts and some shared ones, labels them for its own
concept, and labels a few negative; readers search and predict throughout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

from core.ingestion import ingest
from core.inputs import read_texts
from core.learning import train
from core.prediction import predict
from core.storage.index import drop_cached_indexes, load_index
from core.storage.projects import create_project, open_project

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 12

_WRITER = textwrap.dedent(
    """
    import json, random, sys
    from core.storage.index import load_index
    from core.ingestion import ingest
    from core.inputs import read_texts
    from core.storage.projects import open_project
    who, rounds = sys.argv[1], int(sys.argv[2])
    project = open_project("p")
    rng = random.Random(who)
    negatives, added = [], 0
    for r in range(rounds):
        texts = [f"{who} says thing {r} {i}" for i in range(8)] + [f"shared thing {r} {i}" for i in range(4)]
        report = ingest(project, read_texts(texts, concept=f"c-{who}"))
        ids = report.added + report.already_stored
        added += len(report.added)
        concept = project.store.ensure_concepts([f"not-{who}"])[f"not-{who}"]
        picked = rng.sample(ids, 3)
        project.store.set_labels(picked, concept, -1)
        negatives += picked
        index = load_index(project.store, "tiny-text")
        assert len(index) >= len(ids)
    print(json.dumps({"negatives": negatives, "added": added}))
    """
)


def _expected_texts(who: str) -> set[str]:
    return {f"{who} says thing {r} {i}" for r in range(ROUNDS) for i in range(8)}


SHARED = {f"shared thing {r} {i}" for r in range(ROUNDS) for i in range(4)}


def _check_project(project, writers: dict[str, list[int]], others: frozenset[str] = frozenset()) -> None:
    store = project.store
    records = {r.text: r for r in store.list_inputs()}
    wanted = set().union(*(_expected_texts(who) for who in writers)) | SHARED | others
    assert set(records) == wanted, f"lost: {sorted(wanted - set(records))[:5]}"
    labels = {(i, c): v for i, c, v in store.load_annotations()}
    concepts = {name: cid for cid, name in store.list_concepts()}
    for who, negatives in writers.items():
        for text in _expected_texts(who) | SHARED:  # the shared texts carry every writer's label
            assert labels.get((records[text].id, concepts[f"c-{who}"])) == 1, f"lost label of {text} for {who}"
        assert all(labels.get((i, concepts[f"not-{who}"])) == -1 for i in negatives), f"lost negatives of {who}"
    ids, vectors = store.load_embeddings("tiny-text")
    assert sorted(ids) == sorted(r.id for r in records.values())
    drop_cached_indexes(project.root)  # the cache file on disk, as another process would find it
    index = load_index(store, "tiny-text")
    assert len(index) == len(ids)
    _, found = index.search(vectors[:20], 1)
    assert all(np.allclose(vectors[list(ids).index(f[0])], v) for f, v in zip(found, vectors[:20]))


def test_two_processes_ingest_and_label_one_project(data_home):
    project = create_project("p", "tiny")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CONCEPTLAB_HOME": str(data_home)}
    writers = {
        who: subprocess.Popen([sys.executable, "-c", _WRITER, who, str(ROUNDS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for who in ("alice", "bob")
    }
    searches = 0
    while any(p.poll() is None for p in writers.values()):  # a third party reads all along
        ids, vectors = project.store.load_embeddings("tiny-text")
        index = load_index(project.store, "tiny-text")
        assert len(index) >= len(ids) or project.store.generation() > 0
        if len(ids):
            index.search(vectors[:1], 3)
        searches += 1
        time.sleep(0.01)
    outputs = {}
    for who, process in writers.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err.decode()[-2000:]
        assert b"locked" not in err and b"Traceback" not in err
        outputs[who] = json.loads(out)
    assert searches > 0
    _check_project(open_project("p"), {who: output["negatives"] for who, output in outputs.items()})
    # Each shared text was added by one of the two, whichever committed first: never counted twice.
    assert sum(output["added"] for output in outputs.values()) == len(open_project("p").store.list_inputs())


def test_threads_sharing_one_project_object():
    project = create_project("p", "tiny")
    ingest(project, read_texts(["seed one", "seed two"], concept="c-seed"))
    errors: list[BaseException] = []
    negatives: dict[str, list[int]] = {"alice": [], "bob": []}
    done = threading.Event()

    def guarded(work):
        def run() -> None:
            try:
                work()
            except BaseException as e:  # noqa: BLE001 - every failure in a thread is the test's failure
                errors.append(e)

        return threading.Thread(target=run)

    def writer(who: str):
        def work() -> None:
            for r in range(ROUNDS):
                texts = [f"{who} says thing {r} {i}" for i in range(8)] + [f"shared thing {r} {i}" for i in range(4)]
                report = ingest(project, read_texts(texts, concept=f"c-{who}"))
                concept = project.store.ensure_concepts([f"not-{who}"])[f"not-{who}"]
                picked = (report.added + report.already_stored)[:3]
                project.store.set_labels(picked, concept, -1)
                negatives[who] += picked

        return work

    def trainer() -> None:
        while not done.is_set():
            train(project)
            (result,) = list(predict(project, read_texts(["alice says thing 0 1"])))
            assert result.concepts

    def searcher() -> None:
        while not done.is_set():
            ids, vectors = project.store.load_embeddings("tiny-text")
            hits = load_index(project.store, "tiny-text").search(vectors[-1:], 5)[1]
            assert set(hits[0][hits[0] >= 0]) <= set(project.store.load_embeddings("tiny-text")[0])

    writers = [guarded(writer("alice")), guarded(writer("bob"))]
    readers = [guarded(trainer), guarded(searcher)]
    for thread in writers + readers:
        thread.start()
    for thread in writers:
        thread.join(timeout=300)
    done.set()
    for thread in readers:
        thread.join(timeout=300)
    assert errors == []
    assert all(not t.is_alive() for t in writers + readers)
    _check_project(project, negatives, frozenset({"seed one", "seed two"}))


def test_labels_for_inputs_already_stored_are_recorded():
    """The same lost write without any concurrency: re-ingesting stored inputs with a concept labels them."""
    project = create_project("p", "tiny")
    (first,) = ingest(project, read_texts(["hello there"])).added
    report = ingest(project, read_texts(["hello there"], concept="greeting"))
    assert report.already_stored == [first] and report.labelled == 1
    assert project.store.labels_of(first) == {"greeting": 1}
