"""Real, offline benchmark data: Debian's clipart and Fashion-MNIST packages, chatterbot-corpus texts.

Each dataset is embedded once with the project's ``lite`` embedder and cached under
``bench/.data/`` (gitignored): a later run only reads the cache. Missing packages are fetched
with the ordinary clients (``apt-get download`` + ``dpkg -x``, never installed system-wide);
chatterbot-corpus comes from ``bench/requirements.txt`` (``make bench`` installs it).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / ".data"
EMBEDDER = "lite"
CACHE_FORMAT = 1

# Top-level openclipart folders with at least ~100 drawings of one broad subject each.
CLIPART_CATEGORIES = ("animals", "food", "people", "transportation", "tools", "geography", "computer", "signs_and_symbols")
CLIPART_PER_CLASS = 200
FASHION_POOL_PER_CLASS = 200
FASHION_TEST_PER_CLASS = 60
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot")
# chatterbot-corpus topics with enough distinct statements for 64 shots plus a test set.
CHAT_TOPICS = ("ai", "coding", "conversations", "emotion", "psychology", "trivia")
CHAT_PER_CLASS = 200
TEST_PER_CLASS = 30
MAX_SHOTS = 64


@dataclass(frozen=True)
class Dataset:
    """Embedded data of one benchmark: a pool to draw shots from and a fixed test set."""

    name: str
    classes: list[str]
    pool: np.ndarray  # (n, d) L2-normalised
    pool_labels: np.ndarray  # (n,) class index
    test: np.ndarray
    test_labels: np.ndarray


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_datasets(names: tuple[str, ...] = ("openclipart", "fashion-mnist", "chatterbot")) -> list[Dataset]:
    """Embedded datasets, fetched and embedded on first use, from the cache after."""
    loaders = {"openclipart": _clipart, "fashion-mnist": _fashion, "chatterbot": _chatterbot}
    return [_cached(name, loaders[name]) for name in names]


def _cached(name: str, build) -> Dataset:
    path = DATA / f"{name}-{EMBEDDER}-v{CACHE_FORMAT}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as data:
            classes = json.loads(bytes(data["classes"]).decode())
            return Dataset(name, classes, data["pool"], data["pool_labels"], data["test"], data["test_labels"])
    dataset = build()
    DATA.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(
        tmp,
        classes=np.frombuffer(json.dumps(dataset.classes).encode(), np.uint8),
        pool=dataset.pool,
        pool_labels=dataset.pool_labels,
        test=dataset.test,
        test_labels=dataset.test_labels,
    )
    tmp.rename(path)
    say(f"cached {name} embeddings in {path}")
    return dataset


def _debian_package(package: str) -> Path:
    """The package's files, unpacked under bench/.data/<package>/ (downloaded once)."""
    target = DATA / package
    if (target / ".unpacked").exists():
        return target
    downloads = DATA / "debs"
    downloads.mkdir(parents=True, exist_ok=True)
    say(f"fetching Debian package {package}: apt-get download {package} (into {downloads})")
    if subprocess.run(["apt-get", "download", package], cwd=downloads).returncode != 0:
        say("apt-get download failed: running apt-get update, then trying again")
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "download", package], cwd=downloads, check=True)
    (deb,) = sorted(downloads.glob(f"{package}_*.deb"))
    say(f"unpacking {deb.name}: dpkg -x {deb.name} {target}")
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run(["dpkg", "-x", str(deb), str(target)], check=True)
    (target / ".unpacked").touch()
    return target


def _split(per_class: dict[str, list], cap: int, seed: int = 0) -> tuple[list[str], list, list[int], list, list[int]]:
    """Shuffle each class, keep at most ``cap``, put ``TEST_PER_CLASS`` aside for testing."""
    rng = np.random.default_rng(seed)
    classes = sorted(per_class)
    pool, pool_labels, test, test_labels = [], [], [], []
    too_small = [name for name in classes if len(per_class[name]) < TEST_PER_CLASS + MAX_SHOTS]
    if too_small:
        say(f"  left out (fewer than {TEST_PER_CLASS + MAX_SHOTS} distinct items): {', '.join(too_small)}")
    classes = [name for name in classes if name not in too_small]
    for c, name in enumerate(classes):
        items = list(per_class[name])
        order = rng.permutation(len(items))[:cap]
        chosen = [items[i] for i in order]
        test += chosen[:TEST_PER_CLASS]
        test_labels += [c] * len(chosen[:TEST_PER_CLASS])
        pool += chosen[TEST_PER_CLASS:]
        pool_labels += [c] * len(chosen[TEST_PER_CLASS:])
    return classes, pool, pool_labels, test, test_labels


def _unique_per_class(per_class: dict[str, list[tuple[str, object]]]) -> dict[str, list]:
    """Drop items whose key (content hash, normalised text) occurs in more than one class, and repeats."""
    owners: dict[str, set[str]] = {}
    for name, items in per_class.items():
        for key, _ in items:
            owners.setdefault(key, set()).add(name)
    result = {}
    for name, items in per_class.items():
        seen, kept = set(), []
        for key, item in items:
            if len(owners[key]) == 1 and key not in seen:
                seen.add(key)
                kept.append(item)
        result[name] = kept
    return result


def _embed_images(images: list) -> np.ndarray:
    from core.embedding import load_embedder

    embedder = load_embedder(EMBEDDER)
    chunks = []
    for start in range(0, len(images), 64):
        chunks.append(embedder.embed_images(images[start : start + 64]))
        say(f"  embedded {min(start + 64, len(images))}/{len(images)} images")
    return np.concatenate(chunks).astype(np.float32)


def _clipart() -> Dataset:
    from core.embedding import load_embedder
    from core.errors import InputError
    from core.inputs import decode_image

    root = _debian_package("openclipart-png") / "usr/share/openclipart/png"
    per_class = {}
    for category in CLIPART_CATEGORIES:
        files = sorted(p for p in (root / category).rglob("*.png") if p.is_file())
        per_class[category] = [(hashlib.sha256(p.read_bytes()).hexdigest(), p) for p in files]
    classes, pool, pool_labels, test, test_labels = _split(_unique_per_class(per_class), CLIPART_PER_CLASS)
    min_side = load_embedder(EMBEDDER).image_size
    say(f"openclipart: decoding {len(pool) + len(test)} drawings from {len(classes)} categories")

    def decode(paths, labels):
        images, kept = [], []
        for path, label in zip(paths, labels):
            try:
                images.append(decode_image(path.read_bytes(), path.name, min_side=min_side))
                kept.append(label)
            except InputError as e:
                say(f"  skipped {e}")
        return _embed_images(images), np.array(kept, np.int64)

    pool_x, pool_y = decode(pool, pool_labels)
    test_x, test_y = decode(test, test_labels)
    return Dataset("openclipart", classes, pool_x, pool_y, test_x, test_y)


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def _fashion() -> Dataset:
    from PIL import Image

    root = _debian_package("dataset-fashion-mnist") / "usr/share/datasets/fashion-mnist"
    rng = np.random.default_rng(0)

    def sample(prefix: str, per_class: int) -> tuple[list, np.ndarray]:
        images, labels = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz"), _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
        rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in range(len(FASHION_CLASSES))])
        return [Image.fromarray(255 - images[i]).convert("RGB") for i in rows], labels[rows].astype(np.int64)

    # Inverted: dark garments on white, as in a photo of a product, not white on black.
    pool, pool_y = sample("train", FASHION_POOL_PER_CLASS)
    test, test_y = sample("t10k", FASHION_TEST_PER_CLASS)
    say(f"fashion-mnist: embedding {len(pool) + len(test)} images")
    return Dataset("fashion-mnist", list(FASHION_CLASSES), _embed_images(pool), pool_y, _embed_images(test), test_y)


def _chatterbot() -> Dataset:
    import yaml

    from core.embedding import load_embedder

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("chatterbot-corpus is missing: pip install -r bench/requirements.txt (make bench does it)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "english"
    per_class = {}
    for topic in CHAT_TOPICS:
        conversations = yaml.safe_load((folder / f"{topic}.yml").read_text(encoding="utf-8"))["conversations"]
        texts = [str(t).strip() for conversation in conversations for t in conversation if str(t).strip()]
        per_class[topic] = [(" ".join(t.lower().split()), t) for t in texts]
    classes, pool, pool_labels, test, test_labels = _split(_unique_per_class(per_class), CHAT_PER_CLASS)
    say(f"chatterbot-corpus: embedding {len(pool) + len(test)} statements from {len(classes)} topics")
    embedder = load_embedder(EMBEDDER)
    return Dataset(
        "chatterbot",
        classes,
        embedder.embed_texts(pool),
        np.array(pool_labels, np.int64),
        embedder.embed_texts(test),
        np.array(test_labels, np.int64),
    )
