"""Figure 6: warm latency of one prediction against one bare forward."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .common import CLIP, Row, fresh_home, met


def bench_prediction(photos: Path, rows: list[Row], calls: int) -> None:
    """Figure 6: warm latency of one prediction against one bare forward."""
    import torch
    from PIL import Image

    from core.embedding import load_embedder
    from core.ingestion import ingest
    from core.inputs import read_inputs, read_texts
    from core.learning import train
    from core.prediction import predict
    from core.storage.projects import create_project

    embedder = load_embedder(CLIP)
    fresh_home()
    project = create_project("predict", CLIP)
    paths = sorted(photos.glob("*.jpg"))[:40]
    for i, path in enumerate(paths):
        ingest(project, read_inputs([path]), concept=f"c{i % 4}")
    train(project)
    query = paths[0]
    image_tensor = embedder._preprocess(Image.open(query).convert("RGB"))[None]
    tokens = embedder._tokenizer(["a photo of a red square on a table"])

    def bare_from_file():
        # What a plain open_clip script does with a photo file: PIL decode, its own preprocess, one forward.
        return embedder._model.encode_image(embedder._preprocess(Image.open(query).convert("RGB"))[None])

    predict_image = lambda: list(predict(project, read_inputs([query])))  # noqa: E731
    cases = {
        "image": (predict_image, lambda: embedder._model.encode_image(image_tensor), "bare forward", True),
        "text": (
            lambda: list(predict(project, read_texts(["a photo of a red square on a table"]))),
            lambda: embedder._model.encode_text(tokens),
            "bare forward",
            True,
        ),
        "image, against open_clip from the file": (predict_image, bare_from_file, "bare decode + preprocess + forward", False),
    }
    for kind, (ours, bare, reference, has_goal) in cases.items():
        ours_times, bare_times = [], []
        ours()
        with torch.inference_mode():
            bare()
            for _ in range(calls):
                start = time.perf_counter()
                bare()
                bare_times.append(time.perf_counter() - start)
        for _ in range(calls):
            start = time.perf_counter()
            ours()
            ours_times.append(time.perf_counter() - start)
        med, p95 = np.median(ours_times) * 1e3, np.percentile(ours_times, 95) * 1e3
        ref_med, ref_p95 = np.median(bare_times) * 1e3, np.percentile(bare_times, 95) * 1e3
        ratio = med / ref_med
        rows.append(
            Row(
                f"warm prediction, one {kind} (median / p95)",
                f"{med:.1f} / {p95:.1f} ms",
                f"{ref_med:.1f} / {ref_p95:.1f} ms {reference}",
                f"{ratio:.2f}",
                "<= 1.2" if has_goal else "",
                met(ratio <= 1.2) if has_goal else "",
            )
        )
