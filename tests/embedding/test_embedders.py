"""Tests for core.embedding.registry and its backends (tiny, lite, clip with random or local weights). No network."""

from __future__ import annotations

import time
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from core.embedding import (
    DEFAULT_EMBEDDER,
    ZERO_SHOT_TEMPLATES,
    Embedder,
    canonicalize_spec,
    clear_embedder_cache,
    describe_embedders,
    load_embedder,
    parse_clip_spec,
)
from core.embedding.base import make_probe_images
from core.embedding.weights import clip_weights_available, resolve_clip_weights
from core.errors import EmbedderError
from core.paths import get_models_dir

from ..photos import photo_variants

RANDOM_CLIP = "clip:ViT-B-32:random"
DEFAULT_CANONICAL = "clip:ViT-B-32:laion2b_s34b_b79k"
# spec, image space, image dim, text space, text dim
slow = pytest.mark.slow  # loads a real model: seconds the first time, then cached per process
EMBEDDERS = [
    pytest.param("tiny", "tiny-image", 768, "tiny-text", 256, id="tiny"),
    pytest.param("lite", "lite-image", 1280, "lite-text", 384, id="lite", marks=slow),
    pytest.param(RANDOM_CLIP, "clip", 512, "clip", 512, id="clip-random", marks=slow),
]
SPECS = [pytest.param(p.values[0], id=p.id, marks=p.marks) for p in EMBEDDERS]


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(data, name)()).convert("RGB")


def _assert_unit_rows(x: np.ndarray, n: int, d: int) -> None:
    assert x.shape == (n, d)
    assert x.dtype == np.float32
    assert x.flags.c_contiguous
    assert np.isfinite(x).all()
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def _odd_images() -> list[Image.Image]:
    """Images of odd sizes and modes, converted to RGB as the caller must."""
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 128))
    palette = _photo("coffee").convert("P")
    return [
        _photo("chelsea"),
        Image.new("RGB", (7, 5), (10, 200, 30)),
        Image.fromarray(data.camera()).convert("RGB"),  # grayscale source
        rgba.convert("RGB"),
        palette.convert("RGB"),
        Image.new("RGB", (1, 1), (0, 0, 0)),
    ]


@pytest.mark.parametrize(
    ("spec", "expected", "exception"),
    [
        ("clip", DEFAULT_CANONICAL, does_not_raise()),
        (DEFAULT_EMBEDDER, DEFAULT_CANONICAL, does_not_raise()),
        ("  CLIP ", DEFAULT_CANONICAL, does_not_raise()),
        (DEFAULT_CANONICAL, DEFAULT_CANONICAL, does_not_raise()),
        ("clip:vit-b-32:LAION2B-S34B-B79K", DEFAULT_CANONICAL, does_not_raise()),
        ("clip:ViT-B-32:openai", "clip:ViT-B-32:openai", does_not_raise()),
        ("clip:ViT-B-32:random", RANDOM_CLIP, does_not_raise()),
        ("clip:ViT-B-16:RANDOM", "clip:ViT-B-16:random", does_not_raise()),
        ("lite", "lite", does_not_raise()),
        ("Tiny", "tiny", does_not_raise()),
        ("foo", None, pytest.raises(EmbedderError, match="unknown embedder 'foo'")),
        ("", None, pytest.raises(EmbedderError, match="unknown embedder")),
        ("clip:NoSuchArch:random", None, pytest.raises(EmbedderError, match="NoSuchArch")),
        ("clip:ViT-B-32:nosuchtag", None, pytest.raises(EmbedderError, match="nosuchtag")),
        ("clip:ViT-B-32:/no/such/file.pt", None, pytest.raises(EmbedderError, match="/no/such/file.pt")),
        ("clip:ViT-B-32", None, pytest.raises(EmbedderError, match="clip:ViT-B-32")),
        ("clip:ViT-B-32:", None, pytest.raises(EmbedderError, match="clip:ViT-B-32:")),
        ("clip::random", None, pytest.raises(EmbedderError, match="clip::random")),
        ("lite:big", None, pytest.raises(EmbedderError, match="lite:big")),
        ("tiny:1", None, pytest.raises(EmbedderError, match="tiny:1")),
        (None, None, pytest.raises(EmbedderError, match="unknown embedder")),
    ],
)
def test_canonicalize_spec(spec, expected, exception):
    with exception as info:
        assert canonicalize_spec(spec) == expected
    if info is not None:
        assert "\n" not in str(info.value)


def test_canonicalize_relative_checkpoint_path(tmp_path, monkeypatch):
    (tmp_path / "ckpt.pt").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    canonical = canonicalize_spec("clip:ViT-B-32:ckpt.pt")
    assert canonical == f"clip:ViT-B-32:{tmp_path / 'ckpt.pt'}"
    clip = parse_clip_spec(canonical)
    assert clip.is_file and not clip.is_tag and not clip.is_random


def test_describe_embedders_covers_every_kind():
    rows = describe_embedders()
    specs = [spec for spec, _ in rows]
    assert specs == ["clip", "clip:ARCH:TAG", "clip:ARCH:/path", "clip:ARCH:random", "lite", "tiny", "faces", "faces:cnn"]
    assert all(text and "\n" not in text for _, text in rows)
    assert "meaningless" in dict(rows)["clip:ARCH:random"]


@pytest.mark.parametrize(("spec", "image_space", "image_dim", "text_space", "text_dim"), EMBEDDERS)
def test_embedder_contract(spec, image_space, image_dim, text_space, text_dim):
    embedder = load_embedder(spec)
    assert isinstance(embedder, Embedder)
    assert embedder.spec == canonicalize_spec(spec)
    assert (embedder.image_space, embedder.text_space) == (image_space, text_space)
    assert embedder.dims == {image_space: image_dim, text_space: text_dim}
    assert embedder.zero_shot == (image_space == text_space)
    assert embedder.description and "\n" not in embedder.description

    images = _odd_images()
    _assert_unit_rows(embedder.embed_images(images), len(images), image_dim)
    texts = ["a cat", "", "Ünïcödé ✓ 猫", " ".join(["word"] * 500)]
    _assert_unit_rows(embedder.embed_texts(texts), len(texts), text_dim)
    _assert_unit_rows(embedder.embed_images([]), 0, image_dim)
    _assert_unit_rows(embedder.embed_texts([]), 0, text_dim)
    with pytest.raises(TypeError):
        embedder.embed_texts("a bare string")
    with pytest.raises(TypeError):
        embedder.embed_texts(["fine", None])


@pytest.mark.parametrize("spec", SPECS)
def test_embedder_is_cached_and_deterministic(spec):
    embedder = load_embedder(spec)
    assert load_embedder(spec) is embedder
    assert load_embedder(f" {spec.upper()} ") is embedder  # aliases share one cached model
    images = [_photo("coffee"), _photo("rocket")]
    np.testing.assert_array_equal(embedder.embed_images(images), embedder.embed_images(images))
    texts = ["a red car", "two dogs"]
    np.testing.assert_array_equal(embedder.embed_texts(texts), embedder.embed_texts(texts))


def test_concurrent_loads_share_one_embedder(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from core.embedding import registry as embedders

    clear_embedder_cache("tiny")
    created = []
    real_init = embedders.TinyEmbedder.__init__

    def slow_init(self):
        created.append(self)
        time.sleep(0.2)  # widen the race window
        real_init(self)

    monkeypatch.setattr(embedders.TinyEmbedder, "__init__", slow_init)
    with ThreadPoolExecutor(max_workers=8) as pool:
        loaded = list(pool.map(lambda _: load_embedder("tiny"), range(8)))
    assert len(created) == 1 and all(e is loaded[0] for e in loaded)


@pytest.mark.parametrize("spec", SPECS)
def test_batching_does_not_change_results(spec, monkeypatch):
    embedder = load_embedder(spec)
    images = [_photo("coffee"), _photo("chelsea"), _photo("astronaut")]
    texts = ["one", "two words", "three little words"]
    whole_images, whole_texts = embedder.embed_images(images), embedder.embed_texts(texts)
    monkeypatch.setattr(embedder, "batch_size", 2)
    monkeypatch.setattr(embedder, "text_batch_size", 1)
    if embedder.precision == "int8":
        # Dynamic int8 scales activations per batch: other batch-mates move a vector a hair.
        assert (np.sum(embedder.embed_images(images) * whole_images, axis=1) >= 0.999).all()
    else:
        np.testing.assert_allclose(embedder.embed_images(images), whole_images, atol=1e-5)
    np.testing.assert_allclose(embedder.embed_texts(texts), whole_texts, atol=1e-5)


def test_tiny_flat_images_and_empty_text_get_a_fixed_unit_vector():
    tiny = load_embedder("tiny")
    flat = [Image.new("RGB", (9, 9)), Image.new("RGB", (30, 20), (255, 255, 255)), Image.new("RGB", (5, 5), (77,) * 3)]
    vectors = tiny.embed_images([*flat, _photo("coffee")])
    np.testing.assert_allclose(vectors[:3], 1.0 / np.sqrt(768))
    assert abs(float(vectors[0] @ vectors[3])) < 1e-5  # orthogonal to any textured image
    empty = tiny.embed_texts(["", "   "])
    np.testing.assert_allclose(empty, 1.0 / np.sqrt(256))


def test_tiny_is_meaningful():
    tiny = load_embedder("tiny")
    coffee = np.asarray(_photo("coffee"), dtype=np.int16)
    brighter = Image.fromarray(np.clip(coffee + 20, 0, 255).astype(np.uint8))
    a, b, c = tiny.embed_images([_photo("coffee"), brighter, _photo("rocket")])
    assert a @ b > 0.99 > a @ c
    s1, s2, s3 = tiny.embed_texts(["The cat sat on the mat", "the cat sat on a mat", "quarterly revenue report"])
    assert s1 @ s2 > 0.8 > s1 @ s3


@slow
def test_lite_separates_real_photos():
    lite = load_embedder("lite")
    cat = _photo("cat")  # note: skimage's cat() and chelsea() are the very same picture
    w, h = cat.size
    cats = [
        cat,
        _photo("chelsea"),
        cat.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        cat.crop((w // 8, h // 8, w - w // 8, h - h // 8)),
        cat.crop((0, 0, int(w * 0.8), h)).resize((300, 200)),
        cat.rotate(8, resample=Image.Resampling.BILINEAR),
    ]
    coffee = _photo("coffee")
    others = [coffee, coffee.crop((100, 50, 500, 350)), _photo("rocket"), _photo("astronaut")]
    x_cats, x_others = lite.embed_images(cats), lite.embed_images(others)
    within = x_cats @ x_cats.T
    across = x_cats @ x_others.T
    assert within.min() > across.max() + 0.2
    # and the coffee cup and its crop are closer to each other than to any cat
    assert x_others[0] @ x_others[1] > (x_others[:2] @ x_cats.T).max()


@slow
@pytest.mark.parametrize(
    ("anchor", "paraphrase", "unrelated"),
    [
        ("A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."),
        ("The cat sleeps on the sofa.", "A kitten is napping on the couch.", "Preheat the oven to 200 degrees."),
        ("How do I reset my password?", "I forgot my login password.", "Whales migrate thousands of kilometres."),
    ],
)
def test_lite_texts_are_semantic(anchor, paraphrase, unrelated):
    a, p, u = load_embedder("lite").embed_texts([anchor, paraphrase, unrelated])
    assert a @ p > a @ u + 0.2


@pytest.mark.parametrize(
    ("spec", "names", "exception"),
    [
        pytest.param(RANDOM_CLIP, ["cat", "red_car", "a very long concept name"], does_not_raise(), marks=slow),
        pytest.param(RANDOM_CLIP, [], does_not_raise(), marks=slow),
        pytest.param(RANDOM_CLIP, ["cat", " "], pytest.raises(ValueError), marks=slow),
        pytest.param("lite", ["cat"], pytest.raises(EmbedderError, match="zero-shot"), marks=slow),
        ("tiny", ["cat"], pytest.raises(EmbedderError, match="zero-shot")),
    ],
)
def test_build_zero_shot_vectors(spec, names, exception):
    embedder = load_embedder(spec)
    with exception:
        vectors = embedder.build_zero_shot_vectors(names)
        _assert_unit_rows(vectors, len(names), embedder.text_dim)
        if names:
            # the average of several templates, not just the bare name
            bare = embedder.embed_texts([names[0]])[0]
            assert len(ZERO_SHOT_TEMPLATES) > 1 and not np.allclose(vectors[0], bare)


@slow
def test_random_clip_description_says_random():
    description = load_embedder(RANDOM_CLIP).description.lower()
    assert "random" in description and "meaningless" in description


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory) -> Path:
    """The random ViT-B-32's weights saved as a plain state_dict file."""
    import torch

    from core.embedding.clip import _create_model

    path = tmp_path_factory.mktemp("ckpt") / "vit-b-32-random.pt"
    torch.save(_create_model(parse_clip_spec(RANDOM_CLIP), None)[0].state_dict(), path)  # fp32, as released checkpoints are
    return path


def _assert_same_model(a: Embedder, b: Embedder) -> None:
    images, texts = [_photo("coffee"), _photo("chelsea")], ["a cup of coffee", "a cat"]
    np.testing.assert_allclose(a.embed_images(images), b.embed_images(images), atol=1e-6)
    np.testing.assert_allclose(a.embed_texts(texts), b.embed_texts(texts), atol=1e-6)


@slow
def test_clip_from_local_checkpoint(random_checkpoint):
    spec = f"clip:ViT-B-32:{random_checkpoint}"
    assert clip_weights_available(spec)
    assert resolve_clip_weights(spec) == str(random_checkpoint)
    embedder = load_embedder(spec)
    assert embedder.spec == spec and str(random_checkpoint) in embedder.description
    _assert_same_model(embedder, load_embedder(RANDOM_CLIP))


@slow
def test_clip_tag_loads_from_local_hub_cache(random_checkpoint):
    """Weights placed where open_clip's download leaves them are found and loaded, offline."""
    assert not clip_weights_available("clip")
    snapshot = get_models_dir() / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("abc123")
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(random_checkpoint)
    assert clip_weights_available("clip")
    assert resolve_clip_weights("clip") == str(snapshot / "open_clip_pytorch_model.bin")
    try:
        embedder = load_embedder("clip")
        assert embedder.spec == DEFAULT_CANONICAL and "laion2b_s34b_b79k" in embedder.description
        _assert_same_model(embedder, load_embedder(RANDOM_CLIP))
    finally:
        clear_embedder_cache("clip")  # the next test's data home has no weights


@slow
def test_clip_checkpoint_that_does_not_fit_raises(tmp_path):
    bad = tmp_path / "not-a-checkpoint.pt"
    bad.write_bytes(b"this is not a torch file")
    with pytest.raises(EmbedderError, match="could not load CLIP ViT-B-32 from checkpoint"):
        load_embedder(f"clip:ViT-B-32:{bad}")


@pytest.mark.slow
@pytest.mark.parametrize("precision, expected", [("fp32", "fp32"), ("int8", "int8"), ("auto", "int8")])
def test_fast_mode_agrees_with_fp32(precision, expected, monkeypatch):
    monkeypatch.setenv("CONCEPTLAB_PRECISION", "fp32")
    clear_embedder_cache()
    reference = load_embedder("clip:ViT-B-32:random")
    monkeypatch.setenv("CONCEPTLAB_PRECISION", precision)
    clear_embedder_cache()
    embedder = load_embedder("clip:ViT-B-32:random")
    assert embedder.precision == expected
    images = [_photo("coffee"), _photo("chelsea"), _photo("astronaut"), _photo("rocket")]
    agreement = np.sum(reference.embed_images(images) * embedder.embed_images(images), axis=1)
    assert agreement.min() >= 0.99
    np.testing.assert_allclose(reference.embed_texts(["a cat", "a cup"]), embedder.embed_texts(["a cat", "a cup"]), atol=1e-5)
    clear_embedder_cache()


def test_unknown_precision_is_refused(monkeypatch):
    monkeypatch.setenv("CONCEPTLAB_PRECISION", "fp8")
    clear_embedder_cache()
    with pytest.raises(EmbedderError, match="CONCEPTLAB_PRECISION"):
        load_embedder("clip:ViT-B-32:random")
    clear_embedder_cache()


# -- the squeezed lite image model ---------------------------------------------------------------


def _lite_plain_features(images: list[Image.Image]) -> np.ndarray:
    """Embeddings of the library's own, unmodified EfficientNet-Lite0 (the reference)."""
    import torch

    from core.embedding.efficientnet import load_image_model, pooled_features

    lite = load_embedder("lite")
    with torch.inference_mode():
        raw = pooled_features(load_image_model(), lite._batch_transform(images)).numpy()
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


@slow
@pytest.mark.parametrize(
    "images",
    [
        pytest.param(lambda: [_photo("chelsea")], id="one-photo"),
        pytest.param(lambda: [im for name in ("coffee", "astronaut", "rocket") for im in photo_variants(name, 11)], id="33-crops"),
        pytest.param(_odd_images, id="odd-sizes-and-modes"),
    ],
)
@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_squeezed_lite_agrees_with_the_plain_model(images, runtime, monkeypatch):
    import torch

    monkeypatch.setenv("CONCEPTLAB_RUNTIME", runtime)
    clear_embedder_cache()
    lite = load_embedder("lite")
    batch = images()
    ours = lite.embed_images(batch)
    _assert_unit_rows(ours, len(batch), 1280)
    assert lite.runtime == runtime
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in lite.load_image_model().modules())  # really squeezed
    assert lite.agreement >= 0.999
    assert np.sum(ours * _lite_plain_features(batch), axis=1).min() >= 0.999
    clear_embedder_cache()


def _with_se_block(model):
    model._blocks[3].has_se = True
    return model


def _without_a_batch_norm(model):
    import torch

    model._blocks[2]._bn1 = torch.nn.Identity()
    return model


@slow
@pytest.mark.parametrize(
    "damage, exception",
    [
        (lambda model: model, does_not_raise()),
        (_with_se_block, pytest.raises(EmbedderError, match="squeeze-excitation")),
        (_without_a_batch_norm, pytest.raises(EmbedderError, match="Identity")),
    ],
)
def test_squeeze_refuses_a_layout_it_does_not_know(damage, exception):
    from core.embedding.efficientnet import load_image_model, squeeze_image_model

    plain = damage(load_image_model())
    with exception:
        squeezed = squeeze_image_model(plain)
        assert squeezed is not plain and squeezed.channels_last


@slow
@pytest.mark.parametrize(
    "squeeze, agreement, expect_squeezed",
    [
        (None, None, True),
        (None, 0.99, False),  # an int8-like agreement is not good enough for an exact rewrite
        ("fail", None, False),
    ],
)
def test_lite_falls_back_to_the_plain_model(squeeze, agreement, expect_squeezed, monkeypatch):
    import torch

    import core.embedding.efficientnet as lite_module

    if squeeze == "fail":

        def refuse(model):
            raise EmbedderError("not the Lite layout")

        monkeypatch.setattr(lite_module, "squeeze_image_model", refuse)
    if agreement is not None:
        monkeypatch.setattr(lite_module, "measure_agreement", lambda *args: agreement)
    plain = lite_module.load_image_model()
    probe = torch.from_numpy(load_embedder("lite")._batch_transform.to_array(make_probe_images()))
    chosen, measured = lite_module.choose_image_model(plain, probe)
    assert (chosen is not plain) == expect_squeezed
    assert measured == pytest.approx(agreement if agreement is not None else 1.0, abs=1e-3)
