"""Real, offline benchmark data: Debian's packages (clipart, Fashion-MNIST, fortunes, the archive's own
package descriptions), the photos and digits that ship inside scikit-image and scikit-learn, chatterbot-corpus texts.

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
# The wide benchmark (bench/quality.py): more datasets, each a little smaller, so that all of them
# at k = 1 .. 64 and "all" with 20 seeds run in minutes on two cores (embedding them once: about 6 more).
WIDE_PER_CLASS = 120  # 30 to test, 90 in the pool: "all" is 90 per concept
# Every top-level openclipart folder with enough distinct drawings, less "special" and "unsorted" (no subject).
CLIPART_MANY = (
    "animals", "computer", "food", "geography", "office", "people", "recreation", "shapes", "signs_and_symbols", "tools",
    "transportation",
)  # fmt: skip
# Fashion-MNIST's tops, which look alike at 28 x 28: the fine-grained part of it.
FASHION_TOPS = ("t-shirt", "pullover", "dress", "coat", "shirt")
# Natural photos that ship inside scikit-image and scikit-learn (no download): which photo a crop comes from.
PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "grass", "gravel", "hubble_deep_field", "immunohistochemistry",
    "moon", "motorcycle", "retina", "rocket", "china", "flower",
)  # fmt: skip
PHOTO_CROPS = 120  # per photo: 90 from its left half (pool), 30 from its right half (test)
# fortune files with a subject (Debian's "fortunes"): quotations and jokes.
FORTUNE_FILES = ("art", "computers", "drugs", "education", "food", "law", "linux", "love", "politics", "science", "startrek", "work")
# Debian's package descriptions (the one-line synopsis), labelled by Section: short messages, classes as
# unequal as the archive's. The test set keeps the archive's proportions. Read from apt's lists: another
# machine, after another apt-get update, draws other packages (the cache keeps what was drawn).
DEBIAN_SECTIONS = (
    "admin", "devel", "doc", "fonts", "games", "graphics", "libs", "net", "python", "science", "sound", "text", "utils", "web",
)  # fmt: skip
DEBIAN_TEST = 420
DEBIAN_POOL_MAX = 300
DEBIAN_MIN_TEST = 8
# Two concepts, one rare: "game" against every other package (test: 1 game in 20).
GAMES_TEST = (20, 380)
GAMES_POOL = (150, 600)


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


WIDE = (
    "openclipart-11",
    "fashion-mnist",
    "fashion-tops",
    "digits",
    "photo-crops",
    "chatterbot",
    "fortunes",
    "debian-sections",
    "debian-games",
)


def load_datasets(names: tuple[str, ...] = ("openclipart", "fashion-mnist", "chatterbot")) -> list[Dataset]:
    """Embedded datasets, fetched and embedded on first use, from the cache after."""
    loaders = {
        "openclipart": _clipart,
        "openclipart-11": _clipart_many,
        "fashion-mnist": _fashion,
        "digits": _digits,
        "photo-crops": _photo_crops,
        "chatterbot": _chatterbot,
        "fortunes": _fortunes,
        "debian-sections": _debian_sections,
        "debian-games": _debian_games,
    }
    unknown = [name for name in names if name not in loaders and name != "fashion-tops"]
    if unknown:
        raise SystemExit(f"unknown dataset(s): {', '.join(unknown)}; known: {', '.join(sorted(loaders))}, fashion-tops")
    subsets = {"fashion-tops": ("fashion-mnist", FASHION_TOPS)}
    return [
        _subset(_cached(subsets[n][0], loaders[subsets[n][0]]), subsets[n][1], n) if n in subsets else _cached(n, loaders[n]) for n in names
    ]


def is_imbalanced(ds: Dataset) -> bool:
    """Whether the test set's classes differ in size by more than half (then balanced accuracy is the figure)."""
    counts = np.bincount(ds.test_labels, minlength=len(ds.classes))
    return bool(counts.max() > 1.5 * counts.min())


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
    return _clipart_of("openclipart", CLIPART_CATEGORIES, CLIPART_PER_CLASS)


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


def _decode_files(paths: list[Path], labels: list[int]) -> tuple[np.ndarray, np.ndarray]:
    from core.embedding import load_embedder
    from core.errors import InputError
    from core.inputs import decode_image

    min_side = load_embedder(EMBEDDER).image_size
    images, kept = [], []
    for path, label in zip(paths, labels):
        try:
            images.append(decode_image(path.read_bytes(), path.name, min_side=min_side))
            kept.append(label)
        except InputError as e:
            say(f"  skipped {e}")
    return _embed_images(images), np.array(kept, np.int64)


def _clipart_many() -> Dataset:
    return _clipart_of("openclipart-11", CLIPART_MANY, WIDE_PER_CLASS)


def _clipart_of(name: str, categories, per_class_cap: int) -> Dataset:
    """Drawings of openclipart's top-level subject folders, each folder a class, duplicates dropped."""
    root = _debian_package("openclipart-png") / "usr/share/openclipart/png"
    per_class = {}
    for category in categories:
        files = sorted(p for p in (root / category).rglob("*.png") if p.is_file())
        per_class[category] = [(hashlib.sha256(p.read_bytes()).hexdigest(), p) for p in files]
    classes, pool, pool_labels, test, test_labels = _split(_unique_per_class(per_class), per_class_cap)
    say(f"{name}: decoding {len(pool) + len(test)} drawings from {len(classes)} categories")
    pool_x, pool_y = _decode_files(pool, pool_labels)
    test_x, test_y = _decode_files(test, test_labels)
    return Dataset(name, classes, pool_x, pool_y, test_x, test_y)


def _subset(full: Dataset, keep_names: tuple[str, ...], name: str) -> Dataset:
    """Some classes of a cached dataset, at most 90 per class in the pool: nothing new to embed."""
    keep = [full.classes.index(k) for k in keep_names]
    rng = np.random.default_rng(0)
    pool_rows = np.concatenate([rng.permutation(np.flatnonzero(full.pool_labels == c))[: WIDE_PER_CLASS - TEST_PER_CLASS] for c in keep])
    test_rows = np.concatenate([np.flatnonzero(full.test_labels == c)[:TEST_PER_CLASS] for c in keep])
    relabel = {c: i for i, c in enumerate(keep)}
    return Dataset(
        name,
        list(keep_names),
        full.pool[pool_rows],
        np.array([relabel[c] for c in full.pool_labels[pool_rows]], np.int64),
        full.test[test_rows],
        np.array([relabel[c] for c in full.test_labels[test_rows]], np.int64),
    )


def _arrays_split(images: list, labels: np.ndarray, classes: list[str], name: str) -> Dataset:
    per_class = {cls: [images[i] for i in np.flatnonzero(labels == c)] for c, cls in enumerate(classes)}
    rng = np.random.default_rng(0)
    pool, pool_y, test, test_y = [], [], [], []
    for c, cls in enumerate(classes):
        items = [per_class[cls][i] for i in rng.permutation(len(per_class[cls]))[:WIDE_PER_CLASS]]
        test += items[:TEST_PER_CLASS]
        test_y += [c] * len(items[:TEST_PER_CLASS])
        pool += items[TEST_PER_CLASS:]
        pool_y += [c] * len(items[TEST_PER_CLASS:])
    say(f"{name}: embedding {len(pool) + len(test)} images")
    return Dataset(name, classes, _embed_images(pool), np.array(pool_y, np.int64), _embed_images(test), np.array(test_y, np.int64))


def _digits() -> Dataset:
    """scikit-learn's handwritten digits (8 x 8 scans, in the wheel), dark on white."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [Image.fromarray((255 - image * 255 / 16).astype(np.uint8)).convert("RGB") for image in digits.images]
    return _arrays_split(images, digits.target, [str(d) for d in range(10)], "digits")


def _photo(name: str) -> np.ndarray:
    from skimage import data

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    return image


def _photo_crops() -> Dataset:
    """Crops of 16 natural photos, the class being the photo: the pool's from each left half, the test's from the right."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pool, pool_y, test, test_y = [], [], [], []
    for c, name in enumerate(PHOTOS):
        image = _photo(name)
        height, width = image.shape[:2]
        half = width // 2
        for i in range(PHOTO_CROPS):
            left = i >= TEST_PER_CLASS
            side = int(rng.uniform(0.35, 0.7) * min(height, half))
            top, x0 = int(rng.integers(0, height - side + 1)), int(rng.integers(0, half - side + 1))
            crop = image[top : top + side, (x0 if left else half + x0) : (x0 if left else half + x0) + side]
            (pool if left else test).append(Image.fromarray(crop).convert("RGB"))
            (pool_y if left else test_y).append(c)
    say(f"photo-crops: embedding {len(pool) + len(test)} crops of {len(PHOTOS)} photos")
    pool_x, test_x = _embed_images(pool), _embed_images(test)
    return Dataset("photo-crops", list(PHOTOS), pool_x, np.array(pool_y, np.int64), test_x, np.array(test_y, np.int64))


def _embed_text_dataset(name: str, classes, pool, pool_labels, test, test_labels) -> Dataset:
    from core.embedding import load_embedder

    embedder = load_embedder(EMBEDDER)
    say(f"{name}: embedding {len(pool) + len(test)} texts in {len(classes)} classes")
    return Dataset(
        name,
        list(classes),
        embedder.embed_texts(pool),
        np.array(pool_labels, np.int64),
        embedder.embed_texts(test),
        np.array(test_labels, np.int64),
    )


def _fortunes() -> Dataset:
    folder = _debian_package("fortunes") / "usr/share/games/fortunes"
    per_class = {}
    for topic in FORTUNE_FILES:
        entries = [" ".join(e.split()) for e in (folder / topic).read_text(encoding="utf-8", errors="replace").split("\n%\n")]
        per_class[topic] = [(e.lower(), e) for e in entries if e.strip("% ")]
    classes, pool, pool_labels, test, test_labels = _split(_unique_per_class(per_class), WIDE_PER_CLASS)
    return _embed_text_dataset("fortunes", classes, pool, pool_labels, test, test_labels)


def _debian_descriptions() -> dict[str, list[tuple[str, str]]]:
    """{section: [(normalised synopsis, synopsis)]} of every package apt knows (``apt-cache dumpavail``: no download)."""
    out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, check=True).stdout
    sections: dict[str, dict[str, str]] = {}
    for stanza in out.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if "Package" in fields and "Section" in fields and "Description" in fields:
            section = fields["Section"].rsplit("/", 1)[-1]
            sections.setdefault(section, {})[fields["Package"]] = fields["Description"].strip()
    return {s: sorted((" ".join(d.lower().split()), d) for d in packages.values()) for s, packages in sections.items()}


def _debian_sections() -> Dataset:
    per_class = _unique_per_class({s: items for s, items in _debian_descriptions().items() if s in DEBIAN_SECTIONS})
    classes = sorted(per_class)
    total, largest = sum(len(per_class[c]) for c in classes), max(len(v) for v in per_class.values())
    rng = np.random.default_rng(0)
    pool, pool_y, test, test_y = [], [], [], []
    for c, name in enumerate(classes):
        items = [per_class[name][i] for i in rng.permutation(len(per_class[name]))]
        n_test = max(DEBIAN_MIN_TEST, round(DEBIAN_TEST * len(items) / total))
        n_pool = min(len(items) - n_test, max(MAX_SHOTS + 16, round(DEBIAN_POOL_MAX * len(items) / largest)))
        test += items[:n_test]
        test_y += [c] * n_test
        pool += items[n_test : n_test + n_pool]
        pool_y += [c] * n_pool
    return _embed_text_dataset("debian-sections", classes, pool, pool_y, test, test_y)


def _debian_games() -> Dataset:
    descriptions = _debian_descriptions()
    per_class = _unique_per_class(
        {"game": descriptions["games"], "not a game": [item for s, items in descriptions.items() if s != "games" for item in items]}
    )
    rng = np.random.default_rng(0)
    pool, pool_y, test, test_y = [], [], [], []
    for c, name in enumerate(("game", "not a game")):
        items = [per_class[name][i] for i in rng.permutation(len(per_class[name]))]
        test += items[: GAMES_TEST[c]]
        test_y += [c] * GAMES_TEST[c]
        pool += items[GAMES_TEST[c] : GAMES_TEST[c] + GAMES_POOL[c]]
        pool_y += [c] * GAMES_POOL[c]
    return _embed_text_dataset("debian-games", ["game", "not a game"], pool, pool_y, test, test_y)
