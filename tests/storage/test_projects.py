"""Tests for core.storage.projects: renaming, with every way a new name can collide."""

from __future__ import annotations

import pytest

from core.errors import ProjectError
from core.storage.projects import create_project, list_projects, open_project, rename_project


@pytest.mark.parametrize(
    "existing, old, new, error",
    [
        (["foo", "Foo"], "foo", "Foo", "a project named 'Foo' already exists"),  # two folders that differ in case
        (["foo", "bar"], "foo", "bar", "a project named 'bar' already exists"),
        (["foo"], "foo", "Foo", None),  # only the spelling changes
        (["foo"], "foo", "baz", None),
        (["foo"], "nope", "baz", "no project named 'nope'"),
    ],
)
def test_rename_project(existing, old, new, error):
    for name in existing:
        create_project(name, "tiny")
    if error:
        with pytest.raises(ProjectError, match=error):
            rename_project(old, new)
        assert sorted(p.name for p in list_projects()) == sorted(existing)
    else:
        renamed = rename_project(old, new)
        assert renamed.name == new and open_project(new).store.get_meta("name") == new
        assert sorted(p.name for p in list_projects()) == sorted([new, *(n for n in existing if n != old)])
