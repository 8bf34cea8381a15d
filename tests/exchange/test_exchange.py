"""Model files (export, import, and every way a hostile one is refused) and formula-safe CSV."""

from __future__ import annotations

import csv
import io
import json
import struct
import zipfile

import numpy as np
import pytest

from core.cli import run
from core.errors import ModelFileError
from core.exchange import (
    FOREIGN_ID_OFFSET,
    ExchangeLimits,
    export_model,
    export_model_to,
    import_model,
    read_model_file,
)
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs, read_texts
from core.learning import get_threshold_overrides, load_model, set_threshold, train
from core.prediction import predict
from core.storage.projects import create_project, open_project
from core.storage.spreadsheet import neutralise_cell, write_csv

from ..photos import COLOURS, solid_image


def _colour_folder(root, seed=0):
    for concept, colour in COLOURS.items():
        (root / concept).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            solid_image(colour, size=32, seed=seed + i).save(root / concept / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A trained tiny project in its own data home: (home, exported bytes, query image path)."""
    home = tmp_path_factory.mktemp("source-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONCEPTLAB_HOME", str(home))
        project = create_project("src", "tiny")
        ingest(project, read_inputs([_colour_folder(home / "in")], ReadConfig(labels_from_folders=True)))
        ingest(project, read_texts(["a cat on a mat", "two dogs", "a kitten"], concept="pets"))
        train(project)
        data = export_model(project)
        query = home / "query.png"
        solid_image(COLOURS["red"], size=32, seed=999).save(query)
        scores = _scores(project, query)
        project.store.close()
    return home, data, query, scores


def _scores(project, path) -> dict[str, float]:
    (result,) = list(predict(project, read_inputs([path])))
    return {c.concept.casefold(): c.score for c in result.concepts}


def _unpack(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _pack(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _npy(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def _with_manifest(data: bytes, change) -> bytes:
    entries = _unpack(data)
    manifest = json.loads(entries["manifest.json"])
    change(manifest)
    entries["manifest.json"] = json.dumps(manifest).encode()
    return _pack(entries)


def _with_array(data: bytes, name: str, array: np.ndarray, raw: bytes | None = None, describe: bool = True) -> bytes:
    """Replace the array ``name`` by ``array`` (or by raw .npy bytes), updating the manifest unless told not to."""
    from core.exchange.model_file import array_digest

    entries = _unpack(data)
    manifest = json.loads(entries["manifest.json"])
    item = next(a for a in manifest["arrays"] if a["name"] == name)
    entries[item["entry"]] = raw if raw is not None else _npy(array)
    if describe:
        item.update(dtype=array.dtype.str, shape=list(array.shape), sha256=array_digest(array))
    entries["manifest.json"] = json.dumps(manifest).encode()
    return _pack(entries)


# ---------------------------------------------------------------- round trips


def test_export_import_round_trip_predicts_the_same(source):
    _, data, query, scores = source
    target = create_project("dst", "tiny")
    target.store.create_concept("RED")  # matched by name, whatever the case
    result = import_model(target, data)
    assert result.version == 1 and set(result.concepts) == {"red", "green", "blue", "pets"}
    assert sorted(result.created) == ["blue", "green", "pets"]
    assert _scores(target, query) == pytest.approx(scores)
    model = load_model(target)
    assert {n.casefold() for n in model.concept_names.values()} == {"red", "green", "blue", "pets"}
    assert set(model.concept_names) == {cid for cid, _ in target.store.list_concepts()}
    # The examples belong to another project: their ids are moved out of the way of this project's inputs.
    assert (model.spaces["tiny-image"].memory_ids >= FOREIGN_ID_OFFSET).all()
    (prediction,) = list(predict(target, read_inputs([query])))
    assert prediction.neighbours == []
    report = target.store.list_versions()[0][4]
    assert report["imported"]["source"]["project"] == "src"


def test_reimport_into_the_source_project_keeps_its_examples(source, monkeypatch):
    home, data, query, scores = source
    monkeypatch.setenv("CONCEPTLAB_HOME", str(home))
    project = open_project("src")
    versions_before = len(project.store.list_versions())
    result = import_model(project, io.BytesIO(data))
    assert result.created == [] and result.version == versions_before + 1
    (prediction,) = list(predict(project, read_inputs([query])))
    assert prediction.neighbours and prediction.neighbours[0].labels == {"red": 1}
    assert _scores(project, query) == pytest.approx(scores)


def test_manifest_names_embedder_concepts_thresholds_and_metrics(source, tmp_path):
    _, data, _, _ = source
    manifest = json.loads(_unpack(data)["manifest.json"])
    assert manifest["embedder"] == "tiny" and manifest["exclusive"] is False
    assert sorted(manifest["concepts"]) == ["blue", "green", "pets", "red"]
    assert {"thresholds", "metrics", "model", "report", "source", "arrays"} <= set(manifest)
    assert all(name.endswith(".npy") or name == "manifest.json" for name in _unpack(data))
    # The file is also a plain .npz to numpy, still without pickle.
    path = tmp_path / "m.zip"
    path.write_bytes(data)
    with np.load(path, allow_pickle=False) as npz:
        assert npz["arrays/0"].dtype != object


def test_new_arrays_and_report_fields_travel_untouched(source, tmp_path):
    """Training may add arrays and report fields (thresholds, metrics): export and import carry them all."""
    home, data, _, _ = source
    target = create_project("dst", "tiny")
    import_model(target, data)
    (_, _, file, seconds, report) = target.store.list_versions()[0]
    path = target.root / "versions" / file
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["tiny-image/calibration"] = np.arange(8, dtype=np.float32).reshape(4, 2)
    arrays["tiny-image/new_scalar"] = np.array(0.5)  # a 0-d array keeps its shape ()
    np.savez(path, **arrays)
    report = {**report, "thresholds": {"red": 0.42}, "metrics": {"red": {"f1": 0.9}}}
    target.store.add_version(file, seconds, report)
    exported = export_model_to(target, tmp_path / "again.zip")
    model_file = read_model_file(exported)
    assert model_file.thresholds == {"red": 0.42} and model_file.metrics == {"red": {"f1": 0.9}}
    np.testing.assert_array_equal(model_file.arrays["tiny-image/calibration"], arrays["tiny-image/calibration"])
    second = create_project("dst2", "tiny")
    import_model(second, exported)
    with np.load(second.root / "versions" / second.store.list_versions()[0][2], allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["tiny-image/calibration"], arrays["tiny-image/calibration"])
        assert npz["tiny-image/new_scalar"].shape == () and float(npz["tiny-image/new_scalar"]) == 0.5


def test_thresholds_set_by_hand_travel_by_name(source, tmp_path, monkeypatch):
    home, _, _, _ = source
    monkeypatch.setenv("CONCEPTLAB_HOME", str(home))
    project = open_project("src")
    version = load_model(project).version
    set_threshold(project, version, "green", 0.8)
    data = export_model(project, version)
    set_threshold(project, version, "green", 0.5)  # the source changes afterwards: the file does not
    monkeypatch.setenv("CONCEPTLAB_HOME", str(tmp_path / "elsewhere"))
    target = create_project("dst", "tiny")
    target.store.create_concept("zebra")  # so ids differ from the source's
    result = import_model(target, data)
    green = target.store.concept_id("green")
    assert get_threshold_overrides(target, result.version) == {green: 0.8}
    assert read_model_file(data).threshold_overrides == {"green": 0.8}


# ---------------------------------------------------------------- refusals


def _nothing_imported(project, concepts_before):
    assert project.store.list_versions() == []
    assert list((project.root / "versions").glob("*")) == [] if (project.root / "versions").exists() else True
    assert project.store.list_concepts() == concepts_before


@pytest.mark.parametrize(
    "embedder, exclusive, message",
    [
        ("lite", False, r"trained with embedder tiny, but project 'dst' uses lite: embeddings of different models do not mix"),
        ("tiny", True, r"this model has independent concepts, but project 'dst' has mutually exclusive concepts"),
    ],
)
def test_mismatched_project_is_refused(source, embedder, exclusive, message):
    target = create_project("dst", embedder, exclusive=exclusive)
    with pytest.raises(ModelFileError, match=message):
        import_model(target, source[1])
    _nothing_imported(target, [])


def _overlapping(data: bytes) -> bytes:
    """Point the second central directory entry at the first one's local header."""
    raw = bytearray(data)
    first = raw.find(b"PK\x01\x02")
    second = raw.find(b"PK\x01\x02", first + 4)
    offset = struct.unpack_from("<I", raw, first + 42)[0]
    struct.pack_into("<I", raw, second + 42, offset)
    return bytes(raw)


def _encrypted(data: bytes) -> bytes:
    raw = bytearray(data)
    central = raw.find(b"PK\x01\x02")
    raw[central + 8] |= 0x1
    return bytes(raw)


def _first_array(data: bytes, key: str):
    return json.loads(_unpack(data)["manifest.json"])["arrays"][0][key]


def _with_embedder(data: bytes, spec: str) -> bytes:
    """A tampered file claiming another embedder, consistently in both manifests."""

    def claim(manifest: dict) -> None:
        manifest["embedder"] = spec
        manifest["model"]["embedder"] = spec

    return _with_manifest(data, claim)


def _lying_shape(data: bytes) -> bytes:
    """An array whose header (and manifest) claim 2**31 x 64 floats, 512 GiB, backed by 64 bytes."""
    entries = _unpack(data)
    manifest = json.loads(entries["manifest.json"])
    item = manifest["arrays"][0]
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**31, 64)})
    entries[item["entry"]] = header.getvalue() + b"\0" * 64
    item.update(dtype="<f4", shape=[2**31, 64])
    entries["manifest.json"] = json.dumps(manifest).encode()
    return _pack(entries)


HOSTILE = [
    # how to spoil a good model file, what the refusal says
    pytest.param(lambda d: b"", "the model file is empty", id="empty"),
    pytest.param(lambda d: b"GIF89a not a model" * 10, r"not a conceptlab model file \(not a zip archive\)", id="not-zip"),
    pytest.param(lambda d: d[: len(d) // 2], "not a conceptlab model file", id="truncated"),
    pytest.param(lambda d: _pack({**_unpack(d), "../evil.sh": b"rm -rf /"}), r"unexpected entry '\.\./evil\.sh'", id="dot-dot-entry"),
    pytest.param(lambda d: _pack({**_unpack(d), "/etc/cron.d/x": b"x"}), "unexpected entry '/etc/cron.d/x'", id="absolute-entry"),
    pytest.param(lambda d: _pack({**_unpack(d), "weights.pkl": b"\x80\x04."}), "unexpected entry 'weights.pkl'", id="pickle-entry"),
    pytest.param(
        lambda d: _pack({k: v for k, v in _unpack(d).items() if k != "manifest.json"}),
        r"not a conceptlab model file \(a zip without manifest.json\)",
        id="no-manifest",
    ),
    # A zip of photos, as a person may pick by mistake: what it is not, not which entry surprised us.
    pytest.param(
        lambda d: _pack({"ants/": b"", "ants/a.jpg": b"\xff\xd8"}),
        r"not a conceptlab model file \(a zip without manifest.json\)",
        id="zip-of-photos",
    ),
    pytest.param(lambda d: _pack({**_unpack(d), "manifest.json": b"{not json"}), "manifest is not valid JSON", id="bad-json"),
    pytest.param(lambda d: _pack({**_unpack(d), "manifest.json": b"[" * 100_000}), "manifest is not valid JSON", id="deep-json"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(format="other")), "names another format", id="wrong-format"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(format_version=99)), "made by a newer conceptlab", id="newer"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.pop("embedder")), "no valid 'embedder'", id="no-embedder"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(concepts=["a", "A"])), "same concept twice", id="dup-concepts"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(concepts=["x" * 500])), "bad concept name", id="long-concept"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(concepts=[7])), "bad concept name", id="concept-not-text"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(threshold_overrides={"red": 7})), "bad threshold", id="threshold"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m.update(threshold_overrides={"cow": 0.5})), "bad threshold", id="threshold-name"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["model"].update(format=99)), "newer than this conceptlab reads", id="model-newer"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["model"].update(embedder="lite")), "disagree", id="inner-embedder"),
    pytest.param(
        lambda d: _with_manifest(d, lambda m: m["model"]["kinds"].update({"tiny-image": ["eval"] * 3})), "heads .* malformed", id="bad-kind"
    ),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"].pop()), "not list exactly the arrays", id="unlisted-array"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][0].update(dtype="|O")), "not a plain little-endian", id="object-dtype"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][0].update(dtype=">f4")), "not a plain little-endian", id="big-endian"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][0].update(shape=[-1])), "malformed shape", id="negative-shape"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][0].update(shape=[1] * 9)), "malformed shape", id="many-dims"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][1].update(name=m["arrays"][0]["name"])), "duplicate", id="dup-array"),
    pytest.param(lambda d: _with_manifest(d, lambda m: m["arrays"][0].update(sha256="0" * 64)), "checksum", id="checksum"),
    pytest.param(
        lambda d: _with_array(d, _first_array(d, "name"), np.array([None], dtype=object), raw=_npy(np.array([None], object), True)),
        "not a plain little-endian",
        id="pickled-array",
    ),
    pytest.param(
        lambda d: _with_array(d, _first_array(d, "name"), np.zeros(3), raw=_npy(np.array([None], object), True), describe=False),
        "does not have the type and shape",
        id="pickle-behind-a-float-manifest",
    ),
    pytest.param(_lying_shape, "arrays are too large", id="shape-lie-64-GB"),
    pytest.param(lambda d: _with_array(d, "tiny-image/weights", np.full((3, 768), np.nan, np.float32)), "NaN", id="nan-weights"),
    pytest.param(lambda d: _with_array(d, "tiny-image/weights", np.zeros((3, 5), np.float32)), "embedding size", id="dims-disagree"),
    pytest.param(lambda d: _with_array(d, "tiny-image/concept_ids", np.array([1, 2, 3, 99])), "does not name", id="unnamed-concept"),
    pytest.param(lambda d: _with_array(d, "tiny-image/memory_ids", np.arange(18)[::-1].copy()), "not increasing", id="unsorted-ids"),
    pytest.param(lambda d: _with_array(d, "tiny-image/bias", np.zeros(2, np.float32)), "does not load", id="wrong-bias-shape"),
    pytest.param(lambda d: _with_array(d, "tiny-image/memory_labels", np.zeros((18, 2), np.int8)), "does not load", id="labels-shape"),
    pytest.param(lambda d: _with_embedder(d, "lite"), "are not those of embedder lite", id="claims-lite"),
    pytest.param(lambda d: _with_embedder(d, "clip:ViT-B-32:/etc/passwd"), "local CLIP checkpoint", id="checkpoint-path"),
    pytest.param(lambda d: _with_embedder(d, "clip:ViT-B-32:../../x.pt"), "local CLIP checkpoint", id="relative-checkpoint"),
    pytest.param(lambda d: _with_embedder(d, "sklearn"), "unknown embedder", id="unknown-embedder"),
    pytest.param(lambda d: _with_embedder(d, "tiny:extra"), "unknown embedder", id="tiny-with-options"),
    pytest.param(_overlapping, "overlap|damaged|not a conceptlab", id="overlapping-entries"),
    pytest.param(_encrypted, "encrypted", id="encrypted-entry"),
    pytest.param(lambda d: _pack({**_unpack(d), **{f"arrays/{i + 100}.npy": b"" for i in range(1001)}}), "too many entries", id="entries"),
    pytest.param(lambda d: _pack({**_unpack(d), "manifest.json": b" " * (80 * 1024**2)}), "compressed too much", id="zip-bomb"),
]


@pytest.mark.parametrize("spoil, message", HOSTILE)
def test_hostile_model_files_are_refused_and_change_nothing(source, spoil, message):
    target = create_project("dst", "tiny")
    target.store.create_concept("red")
    before = target.store.list_concepts()
    with pytest.raises(ModelFileError, match=message) as refused:
        import_model(target, spoil(source[1]))
    assert "\n" not in str(refused.value)
    _nothing_imported(target, before)


def test_limits_are_checked_before_reading(tmp_path, source):
    path = tmp_path / "big.zip"
    path.write_bytes(source[1])
    with pytest.raises(ModelFileError, match="model file too large"):
        read_model_file(path, ExchangeLimits(max_file_bytes=1000))
    with pytest.raises(ModelFileError, match="cannot read model file"):
        read_model_file(tmp_path / "missing.zip")


@pytest.mark.parametrize(
    "source, name, begins",
    [
        ("path", None, "could not use {path}: not a conceptlab model file"),  # a path names itself
        ("bytes", "upload.zip", "could not use upload.zip: not a conceptlab model file"),
        ("bytes", None, "not a conceptlab model file"),  # nameless bytes: the reason alone
    ],
)
def test_a_refused_model_file_is_named(tmp_path, source, name, begins):
    path = tmp_path / "bad.zip"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError) as refused:
        read_model_file(path if source == "path" else path.read_bytes(), name=name)
    assert str(refused.value).startswith(begins.format(path=path))


def test_an_import_into_the_wrong_project_names_the_file(source):
    target = create_project("dst", "lite")
    with pytest.raises(ModelFileError, match=r"^could not use shared\.zip: this model was trained with embedder tiny"):
        import_model(target, source[1], name="shared.zip")
    _nothing_imported(target, [])


# ---------------------------------------------------------------- command line


def test_command_line_export_and_import(source, tmp_path, capsys, monkeypatch):
    home, _, query, scores = source
    monkeypatch.setenv("CONCEPTLAB_HOME", str(home))
    out = tmp_path / "model.zip"
    assert run(["export", "src", str(out)]) == 0
    assert "exported to" in capsys.readouterr().out
    monkeypatch.setenv("CONCEPTLAB_HOME", str(tmp_path / "other-home"))
    assert run(["--json", "import", "copy", str(out)]) == 0  # a missing project is created for it
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert _scores(open_project("copy"), query) == pytest.approx(scores)
    create_project("lite-one", "lite")
    assert run(["import", "lite-one", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: could not use {out}: this model was trained with embedder tiny") and error.count("\n") == 1
    assert run(["export", "copy", str(tmp_path / "v9.zip"), "--version", "9"]) == 1
    assert "no model version 9" in capsys.readouterr().err


# ---------------------------------------------------------------- CSV


@pytest.mark.parametrize(
    "value, expected",
    [
        ('=HYPERLINK("http://evil")', '\'=HYPERLINK("http://evil")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("  =1", "'  =1"),
        ("cmd|' /C calc'!A0", "cmd|' /C calc'!A0"),
        ("a cat", "a cat"),
        ("e=mc2", "e=mc2"),
        (-0.25, "-0.25"),
        (3, "3"),
        (np.float32(0.5), "0.5"),
        (None, ""),
        (True, "True"),
    ],
)
def test_neutralise_cell(value, expected):
    assert neutralise_cell(value) == expected


def test_write_csv_is_excel_safe_and_round_trips():
    rows = [{"name": "=1+1", "score": -0.5, "note": 'says "hi", twice\nnewline'}, {"name": "ok.jpg", "score": 1, "note": None}]
    data = write_csv(rows)
    assert data.startswith(b"\xef\xbb\xbf")
    parsed = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert parsed == [["name", "score", "note"], ["'=1+1", "-0.5", 'says "hi", twice\nnewline'], ["ok.jpg", "1", ""]]
    tsv = write_csv([["a", "-b"]], header=["x", "+y"], delimiter="\t").decode("utf-8-sig")
    assert tsv == "x\t'+y\r\na\t'-b\r\n"
    assert write_csv([], header=["only"]).decode("utf-8-sig") == "only\r\n"
