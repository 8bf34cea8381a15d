"""The README's onnxruntime example, run as a person would copy it: on an exported file and a real photo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from core.exchange.onnx_export import export_onnx
from core.ingestion import ingest
from core.inputs import ReadConfig, read_inputs, read_texts
from core.learning import train
from core.storage.projects import create_project
from tests.photos import photo_variants, save_photo_folders

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"<!-- onnx-example[^>]*-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README lost its onnx-example block"
    return match.group(1)


def test_the_readme_onnx_example_runs_and_names_the_concept(tmp_path):
    script = _example()
    assert len(script.strip().splitlines()) <= 20
    assert set(re.findall(r"^import (.+)$|^from (\S+) import", script, re.M)) <= {
        ("json, sys", ""),
        ("numpy as np, onnxruntime", ""),
        ("", "PIL"),
    }
    save_photo_folders(tmp_path / "train", {"cat": "chelsea", "coffee": "coffee"}, count=4)
    project = create_project("pets", "lite")
    ingest(project, read_inputs([tmp_path / "train"], ReadConfig(labels_from_folders=True)))
    # Texts too, so the file also takes token ids: the photo-only script must not need to send them.
    ingest(project, read_texts(["a cat purring", "a cat asleep"]), concept="cat")
    ingest(project, read_texts(["hot coffee", "coffee beans"]), concept="coffee")
    train(project)
    model = export_onnx(project, tmp_path / "pets.onnx")
    (tmp_path / "example.py").write_text(script)
    photo = tmp_path / "query.jpg"
    photo_variants("chelsea", 1, seed=321)[0].save(photo)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "example.py"), str(model), str(photo)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("cat: ") and lines[0].endswith("(match)")
    assert (tmp_path / "pets.tokenizer.json").exists()
