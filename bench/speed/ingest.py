"""Figures 1-3: image ingest against a bare forward, the fast mode, re-ingest; and the lite embedder."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .common import CLIP, VIT_B32_GFLOPS, Row, bare_clip, bare_forward_rate, fresh_home, median_time, met, peak_gflops


def bench_image_ingest(photos: Path, rows: list[Row]) -> None:
    """Figures 1-3: ingest vs bare forward; the fast mode; re-ingest."""
    import torch
    from PIL import Image

    from core.embedding import clear_embedder_cache, load_embedder
    from core.ingestion import BATCH_SIZE, ingest
    from core.inputs import read_inputs
    from core.storage.index import load_index
    from core.storage.projects import create_project

    model, preprocess, _ = bare_clip()
    paths = sorted(photos.glob("*.jpg"))
    tensors = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
    bare = bare_forward_rate(model, tensors, BATCH_SIZE)
    rows.append(Row("CLIP ViT-B-32 bare fp32 forward (decoded tensors)", f"{bare:.1f} img/s"))
    rows.append(
        Row(
            "  achieved GFLOP/s of that forward",
            f"{bare * VIT_B32_GFLOPS:.0f}",
            f"peak {peak_gflops():.0f}",
            f"{bare * VIT_B32_GFLOPS / peak_gflops():.2f}",
        )
    )

    for precision in ("fp32", "auto"):
        os.environ["CONCEPTLAB_PRECISION"] = precision
        clear_embedder_cache()
        fresh_home()
        embedder = load_embedder(CLIP)
        project = create_project(f"ingest-{precision}", CLIP)
        start = time.perf_counter()
        report = ingest(project, read_inputs([photos]))
        load_index(project.store, embedder.image_space)
        first = time.perf_counter() - start
        assert len(report.added) == len(paths), report.failed[:3]
        rate = len(paths) / first
        label = f"image ingest end to end, {embedder.precision}"
        if precision == "fp32":
            rows.append(Row(label, f"{rate:.1f} img/s", f"{bare:.1f} img/s bare", f"{rate / bare:.2f}", ">= 0.9", met(rate / bare >= 0.9)))
            start = time.perf_counter()
            again = ingest(project, read_inputs([photos]))
            second = time.perf_counter() - start
            assert again.added == []
            rows.append(
                Row(
                    "re-ingest the same folder",
                    f"{second:.2f} s",
                    f"{first:.1f} s first",
                    f"{first / second:.0f}x",
                    ">= 50x",
                    met(first / second >= 50),
                )
            )
        else:
            rows.append(
                Row(label, f"{rate:.1f} img/s", f"{bare:.1f} img/s bare fp32", f"{rate / bare:.2f}", ">= 1.5", met(rate / bare >= 1.5))
            )
            fast = bare_forward_rate(embedder._model, tensors, BATCH_SIZE)
            rows.append(
                Row(
                    f"  fast mode forward alone ({embedder.precision})",
                    f"{fast:.1f} img/s",
                    f"{bare:.1f} img/s fp32",
                    f"{fast / bare:.2f}",
                    ">= 1.5",
                    met(fast / bare >= 1.5),
                )
            )
            with torch.inference_mode():
                reference = model.encode_image(tensors[:64], normalize=True)
                ours = embedder._model.encode_image(tensors[:64], normalize=True).float()
            agreement = torch.nn.functional.cosine_similarity(reference, ours).min().item()
            rows.append(
                Row(
                    "  fast mode agreement with fp32 (min cosine, 64 photos)",
                    f"{agreement:.4f}",
                    "",
                    "",
                    ">= 0.99",
                    met(agreement >= 0.99),
                )
            )
    os.environ.pop("CONCEPTLAB_PRECISION", None)
    clear_embedder_cache()


def bench_lite_ingest(photos: Path, rows: list[Row]) -> None:
    """Figure 1 for lite: ingest against the library's plain EfficientNet-Lite0 forward (not our squeezed one).

    The forward passes alone, side by side: the plain model, the squeezed one in torch, and the ONNX
    export under onnxruntime that ingest uses.
    """
    import torch
    from PIL import Image

    from core.embedding import load_embedder
    from core.embedding.efficientnet import load_image_model, pooled_features
    from core.ingestion import ingest
    from core.inputs import read_inputs
    from core.storage.projects import create_project

    embedder = load_embedder("lite")
    plain = load_image_model()
    paths = sorted(photos.glob("*.jpg"))
    batch = embedder._batch_transform.to_array([Image.open(p).convert("RGB") for p in paths])

    def forward_rate(forward) -> float:
        def run() -> None:
            with torch.inference_mode():
                for start in range(0, len(batch), embedder.batch_size):
                    forward(batch[start : start + embedder.batch_size])

        return len(paths) / median_time(run, 1)

    bare_rate = forward_rate(lambda b: pooled_features(plain, torch.from_numpy(b)))
    fresh_home()
    project = create_project("lite", "lite")
    start = time.perf_counter()
    ingest(project, read_inputs([photos]))
    rate = len(paths) / (time.perf_counter() - start)
    squeezed = embedder.load_image_model()
    forwards = {
        f"squeezed lite in torch (agreement {embedder.agreement:.6f})": lambda b: pooled_features(squeezed, torch.from_numpy(b)),
        f"lite under onnxruntime (the runtime in use: {embedder.runtime})": embedder.load_image_runner(),
    }
    rows.append(
        Row(
            "lite image ingest end to end",
            f"{rate:.1f} img/s",
            f"{bare_rate:.1f} img/s bare",
            f"{rate / bare_rate:.2f}",
            ">= 0.9",
            met(rate / bare_rate >= 0.9),
        )
    )
    for name, forward in forwards.items():
        forward_alone = forward_rate(forward)
        ratio = f"{forward_alone / bare_rate:.2f}"
        rows.append(Row(f"  {name}, forward alone", f"{forward_alone:.1f} img/s", f"{bare_rate:.1f} img/s bare", ratio))
