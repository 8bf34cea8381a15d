"""Tests for core.embedding.minilm: the same vectors as sentence-transformers, without importing it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pydoc_data.topics import topics

import numpy as np
import pytest

from core.embedding.minilm import MiniLMEncoder, find_minilm_folder
from core.errors import EmbedderError


def _real_sentences(count: int = 100) -> list[str]:
    """English sentences of Python's own help pages (shipped with Python), short and long, plus hard cases."""
    text = " ".join(topics[name] for name in sorted(topics))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if len(s.split()) >= 4]
    picked = sentences[:: max(len(sentences) // count, 1)][: count - 6]
    # Odd ones: empty, blanks only, accents and CJK, a text far past the 256-token limit, repeated words.
    return picked + ["", "   ", "Ünïcödé façade — naïve café 東京", "word " * 600, "the the the", "OK!"]


def test_vectors_equal_sentence_transformers_on_100_real_sentences():
    from sentence_transformers import SentenceTransformer

    sentences = _real_sentences()
    assert len(sentences) == 100 and len(set(sentences)) == 100
    ours = MiniLMEncoder().encode(sentences).numpy()
    reference = SentenceTransformer(str(find_minilm_folder()), device="cpu", local_files_only=True).encode(
        sentences, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    assert ours.shape == reference.shape == (100, 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert float((ours * reference).sum(axis=1).min()) >= 0.9999


def test_lite_texts_import_neither_sentence_transformers_nor_transformers():
    code = (
        "import sys\n"
        "from core.embedding import load_embedder\n"
        "vectors = load_embedder('lite').embed_texts(['a cat on a mat'])\n"
        "print(vectors.shape, *(m in sys.modules for m in ('sentence_transformers', 'transformers', 'torchvision')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == ["(1,", "384)", "False", "False", "False"]
    assert done.stderr == ""  # no progress bar, no warning


@pytest.mark.parametrize(
    "damage, reason",
    [
        pytest.param(lambda folder: (folder / "model.safetensors").unlink(), "could not read", id="no-weights"),
        pytest.param(lambda folder: (folder / "tokenizer.json").write_text("{not json"), "could not read", id="bad-tokenizer"),
        pytest.param(
            lambda folder: (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}'),
            "does not pool by the mean",
            id="cls-pooling",
        ),
    ],
)
def test_damaged_model_files_are_one_clear_error(tmp_path, damage, reason):
    folder = tmp_path / "minilm"
    shutil.copytree(find_minilm_folder(), folder)
    damage(folder)
    with pytest.raises(EmbedderError, match=reason):
        MiniLMEncoder(folder)
