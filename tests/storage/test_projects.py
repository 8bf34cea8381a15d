"""Tests for core.storage.projects: renaming, with every way a new name can collide."""

from __future__ import annotations

import shutil

import pytest

from core.errors import ProjectError
from core.names import make_name_key
from core.storage.projects import create_project, list_projects, open_project, projects_dir, rename_project


@pytest.mark.parametrize(
    "existing, old, new, error",
    [
        (["foo", "Foo"], "foo", "Foo", "a project named 'Foo' already exists"),  # two folders from before the name rule
        (["foo", "bar"], "foo", "bar", "a project named 'bar' already exists"),
        (["foo"], "foo", "Foo", None),  # only the spelling changes
        (["foo"], "foo", "baz", None),
        (["foo"], "nope", "baz", "no project named 'nope'"),
    ],
)
def test_rename_project(existing, old, new, error):
    for name in existing:
        if any(make_name_key(name) == make_name_key(other) for other in existing[: existing.index(name)]):
            # Same-name projects can no longer be created; an older conceptlab could leave two folders like this.
            shutil.copytree(projects_dir() / existing[0], projects_dir() / name)
        else:
            create_project(name, "tiny")
    if error:
        with pytest.raises(ProjectError, match=error):
            rename_project(old, new)
        assert sorted(p.name for p in list_projects()) == sorted(existing)
    else:
        renamed = rename_project(old, new)
        assert renamed.name == new and open_project(new).store.get_meta("name") == new
        assert sorted(p.name for p in list_projects()) == sorted([new, *(n for n in existing if n != old)])


@pytest.mark.parametrize(
    "name, error",
    [
        ("Pétanque", None),
        ("東京 photos", None),
        ("Ελληνικά", None),
        ("हिन्दी", None),  # combining vowel signs belong to the word
        ("a.b_c-d 2", None),
        ("Pets (2025)", None),  # parentheses, as people number copies
        ("Pets [old]", "not a valid project name"),
        ("", "not a valid project name"),
        ("..", "not a valid project name"),
        ("../evil", "not a valid project name"),
        ("a/b", "not a valid project name"),
        ("a\\b", "not a valid project name"),
        ("-lead", "not a valid project name"),
        ("trailing.", "not a valid project name"),
        ("x" * 65, "not a valid project name"),
        ("con", "Windows keeps it for a device"),
        ("NUL.txt", "Windows keeps it for a device"),
        ("red\x1b[31m", "control character"),
        ("zero\u200bwidth", "ZERO WIDTH SPACE"),
    ],
)
def test_project_names_of_any_script_and_what_is_refused(name, error):
    if error is None:
        project = create_project(name, "tiny")
        assert open_project(name).name == project.name == name
    else:
        with pytest.raises(ProjectError, match=error) as refused:
            create_project(name, "tiny")
        assert "\x1b" not in str(refused.value)
        assert list_projects() == []


def test_project_names_that_are_the_same_name_collide():
    create_project("Éclair", "tiny")
    with pytest.raises(ProjectError, match="a project named 'Éclair' already exists"):
        create_project("éclair", "tiny")
    with pytest.raises(ProjectError, match="a project named 'Éclair' already exists"):
        create_project("E\u0301CLAIR", "tiny")  # decomposed, upper case
    create_project("tart", "tiny")
    with pytest.raises(ProjectError, match="already exists"):
        rename_project("tart", "ÉCLAIR")
    assert rename_project("Éclair", "ÉCLAIR").name == "ÉCLAIR"  # its own spelling may change
