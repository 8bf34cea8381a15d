"""What the speed benchmarks share: the table row, timing, generated inputs and bare-model references."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parents[1] / ".data" / "speed"
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


def median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_wall(command: list[str], runs: int = 5, env: dict | None = None) -> float:
    """Median wall-clock seconds of ``runs`` fresh processes of ``command``: what a person at a terminal waits."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fresh_home() -> Path:
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


def clustered(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
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


def bare_clip():
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    return model.eval(), preprocess, open_clip.get_tokenizer("ViT-B-32")


def bare_forward_rate(model, tensors, batch: int) -> float:
    import torch

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, len(tensors), batch):
                model.encode_image(tensors[start : start + batch], normalize=True)

    return len(tensors) / median_time(run, 1)


def peak_gflops() -> float:
    """Nominal fp32 peak: cores x clock x 64 FLOP/cycle (two AVX-512 FMA units), or 32 with AVX2 only."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    per_cycle = 64 if "avx512f" in flags else 32
    mhz = [float(line.split(":")[1]) for line in flags.splitlines() if line.startswith("cpu MHz")]
    return (os.cpu_count() or 1) * (max(mhz) / 1000 if mhz else 2.0) * per_cycle


def met(ok: bool) -> str:
    return "yes" if ok else "NO"
