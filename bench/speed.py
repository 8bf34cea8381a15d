"""Speed and memory, each figure measured side by side with its reference in one run.

``make bench`` runs it (``python -m bench.speed`` alone; ``--quick`` for a smoke run with
small sizes). Inputs are made here from skimage's photos and moviepy, cached under
``bench/.data/speed``. It prints one table: figure, conceptlab, reference, ratio, goal.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / ".data" / "speed"
CLIP = "clip:ViT-B-32:random"
# ViT-B-32 image tower at 224 px, per image (open_clip's model profile: 4.41 GFLOPs).
VIT_B32_GFLOPS = 4.41
PHOTO_SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina", "immunohistochemistry", "colorwheel")


@dataclass
class Row:
    figure: str
    ours: str
    reference: str = ""
    ratio: str = ""
    goal: str = ""
    met: str = ""


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _fresh_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="conceptlab-bench-"))
    os.environ["CONCEPTLAB_HOME"] = str(home)
    return home


# -- inputs -----------------------------------------------------------------------------------


def make_photos(count: int, folder: Path, megapixels: tuple[float, float] = (1.0, 4.0), seed: int = 0) -> Path:
    """``count`` JPEG photos of 1 to 4 megapixels: crops of skimage photos, upscaled, with noise."""
    from PIL import Image
    from skimage import data

    if folder.exists() and len(list(folder.glob("*.jpg"))) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    sources = [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTO_SOURCES]
    for i in range(count):
        photo = sources[i % len(sources)]
        scale = rng.uniform(0.6, 0.95)
        w, h = int(photo.width * scale), int(photo.height * scale)
        x, y = int(rng.integers(0, photo.width - w + 1)), int(rng.integers(0, photo.height - h + 1))
        target = rng.uniform(*megapixels) * 1e6
        factor = (target / (w * h)) ** 0.5
        crop = photo.crop((x, y, x + w, y + h)).resize((int(w * factor), int(h * factor)), Image.Resampling.BILINEAR)
        pixels = np.asarray(crop, dtype=np.int16) + rng.integers(-12, 13, (crop.height, crop.width, 3), dtype=np.int16)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"photo-{i:05d}.jpg", quality=90)
    return folder


def make_video(path: Path, seconds: int = 60, size: tuple[int, int] = (1280, 720), fps: int = 24) -> Path:
    """A ``seconds``-long 720p mp4: a photo panning under a moving square (libx264)."""
    from moviepy import VideoClip
    from PIL import Image
    from skimage import data

    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    photo = np.asarray(Image.fromarray(data.astronaut()).resize((w + 400, h), Image.Resampling.BILINEAR))

    def frame(t: float) -> np.ndarray:
        shift = int(400 * t / seconds)
        out = photo[:, shift : shift + w].copy()
        x = int((w - 100) * (0.5 + 0.5 * np.sin(t)))
        out[h // 2 - 50 : h // 2 + 50, x : x + 100] = (255, 40, 40)
        return out

    VideoClip(frame, duration=seconds).write_videofile(str(path), fps=fps, codec="libx264", logger=None, preset="veryfast")
    return path


def _clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    """Unit vectors in ``clusters`` tight groups: closer to real embeddings than uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        labels = rng.integers(0, clusters, stop - start)
        block = centres[labels] + 0.6 * rng.normal(size=(stop - start, dim)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


# -- the figures ------------------------------------------------------------------------------


def _bare_clip():
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    return model.eval(), preprocess, open_clip.get_tokenizer("ViT-B-32")


def _bare_forward_rate(model, tensors, batch: int) -> float:
    import torch

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensors), batch):
                model.encode_image(tensors[start : start + batch], normalize=True)

    return len(tensors) / _median_time(run, 1)


def bench_image_ingest(photos: Path, rows: list[Row]) -> None:
    """Figures 1-3: ingest vs bare forward; the fast mode; re-ingest."""
    import torch
    from PIL import Image

    from core.embedders import clear_embedder_cache, load_embedder
    from core.index import load_index
    from core.ingest import BATCH_SIZE, ingest
    from core.media import read_inputs
    from core.projects import create_project

    model, preprocess, _ = _bare_clip()
    paths = sorted(photos.glob("*.jpg"))
    tensors = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
    bare = _bare_forward_rate(model, tensors, BATCH_SIZE)
    rows.append(Row("CLIP ViT-B-32 bare fp32 forward (decoded tensors)", f"{bare:.1f} img/s"))
    rows.append(
        Row(
            "  achieved GFLOP/s of that forward",
            f"{bare * VIT_B32_GFLOPS:.0f}",
            f"peak {_peak_gflops():.0f}",
            f"{bare * VIT_B32_GFLOPS / _peak_gflops():.2f}",
        )
    )

    for precision in ("fp32", "auto"):
        os.environ["CONCEPTLAB_PRECISION"] = precision
        clear_embedder_cache()
        _fresh_home()
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
            rows.append(Row(label, f"{rate:.1f} img/s", f"{bare:.1f} img/s bare", f"{rate / bare:.2f}", ">= 0.9", _met(rate / bare >= 0.9)))
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
                    _met(first / second >= 50),
                )
            )
        else:
            rows.append(
                Row(label, f"{rate:.1f} img/s", f"{bare:.1f} img/s bare fp32", f"{rate / bare:.2f}", ">= 1.5", _met(rate / bare >= 1.5))
            )
            fast = _bare_forward_rate(embedder._model, tensors, BATCH_SIZE)
            rows.append(
                Row(
                    f"  fast mode forward alone ({embedder.precision})",
                    f"{fast:.1f} img/s",
                    f"{bare:.1f} img/s fp32",
                    f"{fast / bare:.2f}",
                    ">= 1.5",
                    _met(fast / bare >= 1.5),
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
                    _met(agreement >= 0.99),
                )
            )
    os.environ.pop("CONCEPTLAB_PRECISION", None)
    clear_embedder_cache()


def bench_lite_ingest(photos: Path, rows: list[Row]) -> None:
    import torch
    from PIL import Image

    from core.embedders import load_embedder
    from core.ingest import ingest
    from core.media import read_inputs
    from core.projects import create_project

    embedder = load_embedder("lite")
    paths = sorted(photos.glob("*.jpg"))
    tensors = torch.stack([embedder._transform(Image.open(p).convert("RGB")) for p in paths])

    def bare() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensors), embedder.batch_size):
                embedder._image_model.extract_features(tensors[start : start + embedder.batch_size]).mean(dim=(2, 3))

    bare_rate = len(paths) / _median_time(bare, 1)
    _fresh_home()
    project = create_project("lite", "lite")
    start = time.perf_counter()
    ingest(project, read_inputs([photos]))
    rate = len(paths) / (time.perf_counter() - start)
    rows.append(
        Row(
            "lite image ingest end to end",
            f"{rate:.1f} img/s",
            f"{bare_rate:.1f} img/s bare",
            f"{rate / bare_rate:.2f}",
            ">= 0.9",
            _met(rate / bare_rate >= 0.9),
        )
    )


def bench_video(video: Path, rows: list[Row]) -> None:
    """Figure 4: a 60 s 720p clip at 1 frame/s against embedding its 60 frames alone."""
    from core.embedders import load_embedder
    from core.ingest import ingest
    from core.media import VideoConfig, read_inputs, sample_frames
    from core.projects import create_project

    embedder = load_embedder(CLIP)
    frames = sample_frames(video.read_bytes(), video.name, VideoConfig(fps=1.0), min_side=embedder.image_size)
    embed_only = _median_time(lambda: embedder.embed_images(frames.images), 1)
    _fresh_home()
    project = create_project("video", CLIP)
    start = time.perf_counter()
    report = ingest(project, read_inputs([video]), video=VideoConfig(fps=1.0))
    took = time.perf_counter() - start
    assert len(report.added) == 1, report.failed
    ratio = took / embed_only
    rows.append(
        Row(
            f"video ingest, 60 s 720p at 1 fps ({len(frames.times)} frames)",
            f"{took:.1f} s",
            f"{embed_only:.1f} s to embed the frames",
            f"{ratio:.2f}",
            "<= 1.5",
            _met(ratio <= 1.5),
        )
    )


def bench_training(rows: list[Row], sizes: tuple[int, ...]) -> None:
    """Figure 5: linear heads on 512-d embeddings, 20 concepts, with and without cross-validation."""
    import hashlib

    from core.heads import HeadConfig
    from core.projects import create_project
    from core.store import NewInput
    from core.training import train

    for n in sizes:
        _fresh_home()
        project = create_project(f"train-{n}", "tiny")
        vectors = _clustered(n, 512, 20, seed=n)
        labels = np.random.default_rng(n).integers(0, 20, n)
        items = [
            NewInput(hashlib.sha256(b"%d" % i).hexdigest(), "image", f"{i}", ".bin", b"%d" % i, "tiny-image", vectors[i]) for i in range(n)
        ]
        ids = project.store.add_inputs(items)
        concepts = project.store.ensure_concepts([f"concept {c}" for c in range(20)])
        for c in range(20):
            project.store.set_labels([ids[items[i].sha256] for i in np.flatnonzero(labels == c)], concepts[f"concept {c}"], 1)
        for evaluate in (False, True):
            config = _head_config(HeadConfig, evaluate)
            if config is None:
                continue
            start = time.perf_counter()
            train(project, config)
            took = time.perf_counter() - start
            goal = {10_000: 1.0, 100_000: 10.0}.get(n)
            label = f"train 20 linear heads, {n:,} x 512" + (", with cross-validation" if evaluate else "")
            rows.append(
                Row(
                    label,
                    f"{took:.2f} s",
                    "",
                    "",
                    f"< {goal:g} s" if goal and not evaluate else "",
                    _met(took < goal) if goal and not evaluate else "",
                )
            )


def _head_config(head_config, evaluate: bool):
    fields = getattr(head_config, "__dataclass_fields__", {})
    for name in ("cross_validate", "evaluate", "cross_validation"):
        if name in fields:
            return head_config(**{name: evaluate})
    return head_config() if not evaluate else None


def bench_prediction(photos: Path, rows: list[Row], calls: int) -> None:
    """Figure 6: warm latency of one prediction against one bare forward."""
    import torch
    from PIL import Image

    from core.embedders import load_embedder
    from core.ingest import ingest
    from core.media import read_inputs, read_texts
    from core.predict import predict
    from core.projects import create_project
    from core.training import train

    embedder = load_embedder(CLIP)
    _fresh_home()
    project = create_project("predict", CLIP)
    paths = sorted(photos.glob("*.jpg"))[:40]
    for i, path in enumerate(paths):
        ingest(project, read_inputs([path]), concept=f"c{i % 4}")
    train(project)
    query = paths[0]
    image_tensor = embedder._preprocess(Image.open(query).convert("RGB"))[None]
    tokens = embedder._tokenizer(["a photo of a red square on a table"])
    cases = {
        "image": (lambda: list(predict(project, read_inputs([query]))), lambda: embedder._model.encode_image(image_tensor)),
        "text": (
            lambda: list(predict(project, read_texts(["a photo of a red square on a table"]))),
            lambda: embedder._model.encode_text(tokens),
        ),
    }
    for kind, (ours, bare) in cases.items():
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
                f"{ref_med:.1f} / {ref_p95:.1f} ms bare",
                f"{ratio:.2f}",
                "<= 1.2",
                _met(ratio <= 1.2),
            )
        )


def bench_search(rows: list[Row], sizes: tuple[int, ...], queries: int = 200) -> None:
    """Figure 7: similarity search latency and recall@10 against exact search."""
    import faiss

    from core.index import VectorIndex

    for n in sizes:
        vectors = _clustered(n, 512, max(20, n // 2000), seed=7)
        rng = np.random.default_rng(1)
        picks = rng.integers(0, n, queries)
        q = vectors[picks] + 0.02 * rng.normal(size=(queries, 512)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        start = time.perf_counter()
        index = VectorIndex.build(np.arange(n, dtype=np.int64), vectors)
        build = time.perf_counter() - start
        exact = faiss.IndexFlatIP(512)
        exact.add(vectors)
        _, truth = exact.search(q, 10)
        latencies, found = [], []
        for row in q:
            start = time.perf_counter()
            _, ids = index.search(row[None], 10)
            latencies.append(time.perf_counter() - start)
            found.append(ids[0])
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth)])
        med = np.median(latencies) * 1e3
        goal = n >= 1_000_000
        rows.append(
            Row(
                f"search {n:,} x 512 ({index.kind}, built in {build:.0f} s)",
                f"{med:.2f} ms, recall@10 {recall:.3f}",
                "exact",
                "",
                "< 5 ms, >= 0.95" if goal else "",
                _met(med < 5 and recall >= 0.95) if goal else "",
            )
        )
        del index, exact, vectors


_RSS_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from core.ingest import ingest
    from core.media import read_inputs
    from core.projects import create_project

    def peak_mb():
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child started from a
        # big parent would report the parent's peak.
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    project = create_project("rss", sys.argv[2])
    peaks = []
    def progress(report, message):
        if report.seen % 1024 < 32:
            peaks.append((report.seen, peak_mb()))
    start = time.perf_counter()
    report = ingest(project, read_inputs([sys.argv[1]]), progress=progress)
    took = time.perf_counter() - start
    print(len(report.added), f"{took:.1f}", f"{peak_mb():.0f}", " ".join(f"{n}:{m:.0f}" for n, m in peaks))
    """
)


def bench_memory(rows: list[Row], count: int, embedder: str) -> None:
    """Figure 8: peak RSS of a fresh process ingesting ``count`` images, and how it grows."""
    folder = make_photos(count, DATA / f"small-{count}", megapixels=(0.3, 0.5), seed=3)
    home = _fresh_home()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(folder), embedder], env=env, capture_output=True, text=True, check=True)
    added, took, peak, *growth = done.stdout.split()
    rows.append(
        Row(
            f"peak RSS ingesting {count:,} images ({embedder})",
            f"{peak} MB",
            f"RSS by count: {' '.join(growth[-3:])}",
            "",
            "< 2500 MB",
            _met(float(peak) < 2500),
        )
    )
    rows.append(Row(f"  ({added} images in {took} s)", ""))


_FIRST_PAGE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    start = time.perf_counter()
    from streamlit.testing.v1 import AppTest
    app = AppTest.from_file("app.py", default_timeout=60).run()
    took = time.perf_counter() - start
    loaded = [m for m in ("torch", "open_clip", "sentence_transformers") if m in sys.modules]
    print(f"{took:.2f}", ",".join(loaded) or "none", len(app.exception))
    """
)


def bench_first_page(rows: list[Row]) -> None:
    """Figure 9: the app's first page in a fresh process, before any model loads."""
    if not (ROOT / "app.py").exists():
        rows.append(Row("app first page", "app.py not there yet"))
        return
    home = _fresh_home()
    env = {**os.environ, "CONCEPTLAB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _FIRST_PAGE_SCRIPT], env=env, capture_output=True, text=True, cwd=ROOT, check=True)
    took, loaded, errors = done.stdout.split()
    rows.append(
        Row(
            f"app first page, fresh process (models imported: {loaded}, errors: {errors})",
            f"{float(took):.2f} s",
            "",
            "",
            "< 2 s",
            _met(float(took) < 2),
        )
    )


def _peak_gflops() -> float:
    """Nominal fp32 peak: cores x clock x 64 FLOP/cycle (two AVX-512 FMA units), or 32 with AVX2 only."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    per_cycle = 64 if "avx512f" in flags else 32
    mhz = [float(line.split(":")[1]) for line in flags.splitlines() if line.startswith("cpu MHz")]
    return (os.cpu_count() or 1) * (max(mhz) / 1000 if mhz else 2.0) * per_cycle


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def _print_table(rows: list[Row]) -> None:
    header = Row("figure", "conceptlab", "reference", "ratio", "goal", "met")
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in Row.__dataclass_fields__]
    for i, row in enumerate([header, *rows]):
        print("  ".join(getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def _machine() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?"
    )
    import torch

    threads = torch.get_num_threads()
    return f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not the figures")
    parser.add_argument("--only", nargs="*", help="run only these sections: ingest lite video train predict search memory app")
    parser.add_argument("--memory-images", type=int, default=10_000, help="how many images the peak-memory run ingests")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sections = set(args.only or ["ingest", "lite", "video", "train", "predict", "search", "memory", "app"])
    quick = args.quick
    photos = make_photos(32 if quick else 512, DATA / ("photos-quick" if quick else "photos"))
    rows: list[Row] = []
    steps = [
        ("ingest", lambda: bench_image_ingest(photos, rows)),
        ("lite", lambda: bench_lite_ingest(photos, rows)),
        ("video", lambda: bench_video(make_video(DATA / ("clip-10s.mp4" if quick else "clip-60s.mp4"), seconds=10 if quick else 60), rows)),
        ("train", lambda: bench_training(rows, (1_000,) if quick else (1_000, 10_000, 100_000))),
        ("predict", lambda: bench_prediction(photos, rows, calls=10 if quick else 50)),
        ("search", lambda: bench_search(rows, (10_000,) if quick else (10_000, 100_000, 1_000_000))),
        ("memory", lambda: bench_memory(rows, 300 if quick else args.memory_images, "lite")),
        ("app", lambda: bench_first_page(rows)),
    ]
    for name, step in steps:
        if name in sections:
            start = time.perf_counter()
            step()
            print(f"[{name} done in {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
    print(f"\nconceptlab speed and memory on {_machine()}; load average {os.getloadavg()[1]:.1f} over the last 5 min\n")
    _print_table(rows)
    print(f"\npeak RSS of this benchmark process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
