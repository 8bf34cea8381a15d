"""A small photo folder that the folder walk and the zip reader must read alike."""

from pathlib import Path

import pytest

from tests.media_fixtures import BLUE, GREEN, RED, make_image


@pytest.fixture
def tree(tmp_path) -> Path:
    """photos/{cats/a.jpg, cats/b.png, dogs/c.jpg, notes.txt, top.jpg} plus hidden things that must be skipped."""
    root = tmp_path / "photos"
    files = {
        "cats/a.jpg": make_image("JPEG", colour=RED),
        "cats/b.png": make_image("PNG", colour=GREEN),
        "dogs/c.jpg": make_image("JPEG", colour=BLUE),
        "notes.txt": b"  a note about pets \n",
        "top.jpg": make_image("JPEG", colour=RED),
        ".hidden.jpg": make_image("JPEG"),
        ".git/x.jpg": make_image("JPEG"),
        "__MACOSX/cats/._a.jpg": b"resource fork",
    }
    for relative, data in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(data)
    return root
