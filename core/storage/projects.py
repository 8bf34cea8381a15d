"""Projects: one folder each under the data home, with an embedder chosen once for good."""

from __future__ import annotations

import logging
import os
import shutil
import time
import unicodedata
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from core.access import Action, require, role_in
from core.access.audit import record
from core.disk import as_storage_error
from core.embedding import DEFAULT_EMBEDDER, Embedder, canonicalize_spec, describe_spaces, load_embedder
from core.embedding.weights import resolve_clip_weights
from core.errors import ProjectError, StorageError, one_line
from core.names import describe_forbidden_character, make_name_key, normalize_name
from core.paths import get_data_home
from core.storage.index import drop_cached_indexes
from core.storage.inputs import ORPHAN_MIN_AGE_S
from core.storage.store import Store

log = logging.getLogger(__name__)

# Names Windows keeps for devices: a folder called so cannot be made there, or copied there.
_RESERVED_NAMES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))})


@dataclass(frozen=True)
class ProjectInfo:
    """What a project list shows."""

    name: str
    embedder: str
    exclusive: bool
    created_at: float
    inputs: int
    concepts: int
    versions: int


class Project:
    """An open project: its store and fixed settings; the embedder loads on first use."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.store = Store(root)
        self.embedder_spec = self.store.get_meta("embedder") or DEFAULT_EMBEDDER
        self.exclusive = self.store.get_meta("exclusive") == "1"

    def embedder(self) -> Embedder:
        """The project's embedder, loaded once per process (its models load when they first embed)."""
        return load_embedder(self.embedder_spec)

    @property
    def spaces(self) -> tuple[str, str]:
        """(image space, text space) of the project's embedder, equal when zero-shot; loads nothing."""
        return describe_spaces(self.embedder_spec)

    def info(self) -> ProjectInfo:
        counts = self.store.count_inputs()
        return ProjectInfo(
            name=self.name,
            embedder=self.embedder_spec,
            exclusive=self.exclusive,
            created_at=float(self.store.get_meta("created_at", "0")),
            inputs=sum(counts.values()),
            concepts=len(self.store.list_concepts()),
            versions=len(self.store.list_versions(report_keys=())),
        )

    def __repr__(self) -> str:
        return f"Project({self.name!r}, embedder={self.embedder_spec!r}, exclusive={self.exclusive})"


def projects_dir() -> Path:
    return get_data_home() / "projects"


def validate_project_name(name: str) -> str:
    """Return the name as stored (``names.normalize_name``), or raise ProjectError saying which names are allowed.

    Letters and digits of any script, spaces, '.', '_', '-', '(' and ')', 1 to 64 characters, starting with a letter
    or digit; never a path separator, '.' or '..', a name Windows reserves for a device, or a control character.
    """
    cleaned = normalize_name(name)
    rule = "use 1 to 64 letters, digits, spaces, '.', '_', '-', '(' or ')', starting with a letter or digit"
    shown = one_line(str(name))
    if not cleaned or len(cleaned) > 64 or not cleaned[0].isalnum() or cleaned.endswith("."):
        raise ProjectError(f"'{shown}' is not a valid project name: {rule}")
    reason = describe_forbidden_character(cleaned)
    if reason is not None:
        raise ProjectError(f"'{shown}' is not a valid project name: {reason}")
    if not all(c.isalnum() or c in " ._-()" or unicodedata.category(c).startswith("M") for c in cleaned):
        raise ProjectError(f"'{shown}' is not a valid project name: {rule}")
    if cleaned.split(".")[0].strip().upper() in _RESERVED_NAMES:
        raise ProjectError(f"'{shown}' is not a valid project name: Windows keeps it for a device")
    return cleaned


def _find_same_name(name: str, except_root: Path | None = None) -> str | None:
    """The existing project whose name is the same name as ``name`` (``Éclair`` and ``éclair``), if any."""
    key = make_name_key(name)
    folder = projects_dir()
    if not folder.is_dir():
        return None
    for entry in folder.iterdir():
        if entry.name.startswith(".") or not (entry / "project.db").exists():
            continue
        if make_name_key(entry.name) == key and (except_root is None or not os.path.samefile(entry, except_root)):
            return entry.name
    return None


def create_project(name: str, embedder: str = DEFAULT_EMBEDDER, exclusive: bool = False) -> Project:
    """Create a project folder with its embedder and label mode fixed for good.

    The folder is built under a temporary name and renamed into place, so a crash
    never leaves a half-made project and two creators of one name cannot both win.

    Raises:
        ProjectError: bad or taken name. EmbedderError: unknown embedder spec.
        WeightsMissingError: CLIP weights are not on this machine (the message says how to get them).
    """
    require(None, Action.CREATE_PROJECT)
    name = validate_project_name(name)
    spec = canonicalize_spec(embedder)
    if spec.startswith("clip:"):
        resolve_clip_weights(spec)  # a project whose weights are missing could never ingest: say so now
    final = projects_dir() / name
    taken = _find_same_name(name)
    if final.exists() or taken is not None:
        raise ProjectError(f"a project named '{taken or name}' already exists")
    staging = projects_dir() / f".creating-{uuid.uuid4().hex}"
    meta = {"name": name, "embedder": spec, "exclusive": "1" if exclusive else "0", "created_at": str(time.time())}
    try:
        Store.initialize(staging, meta).close()
        os.rename(staging, final)
    except StorageError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except OSError as e:
        shutil.rmtree(staging, ignore_errors=True)
        if final.exists():
            raise ProjectError(f"a project named '{name}' already exists") from e
        raise ProjectError(f"could not create project '{name}' in {projects_dir()}: {e.strerror or e}") from e
    log.info("created project %s with embedder %s", name, spec)
    return Project(name, final)


def open_project(name: str) -> Project:
    """Open an existing project by name; ProjectError if there is none.

    Files a killed process left behind (see ``Store.remove_orphans``) are removed on the way, when
    they are old enough not to belong to a writer still at work.
    """
    cleaned = validate_project_name(name)
    root = projects_dir() / cleaned
    if not (root / "project.db").exists():
        raise ProjectError(f"no project named '{cleaned}'")
    project = Project(cleaned, root)
    require(project, Action.VIEW)  # the one check every read goes through: a project is opened first
    project.store.remove_orphans_if_due()
    with suppress(StorageError):  # a read-only data home keeps its old concepts until it can be written
        if merged := project.store.merge_same_name_concepts():
            log.warning("project %s: merged %d concepts whose names are the same name", cleaned, merged)
    _remove_abandoned_folders()
    return project


def _remove_abandoned_folders(min_age_s: float = ORPHAN_MIN_AGE_S) -> None:
    """Remove what a killed ``create_project`` or ``delete_project`` left under the projects folder."""
    now = time.time()
    try:
        leftovers = [p for p in projects_dir().iterdir() if p.name.startswith((".creating-", ".deleting-"))]
    except OSError:
        return
    for path in leftovers:
        try:
            if now - path.stat().st_mtime >= min_age_s:
                shutil.rmtree(path)
                log.info("removed %s, left behind by an interrupted create or delete", path)
        except OSError as e:
            log.debug("could not remove %s: %s", path, e)


def list_projects() -> list[ProjectInfo]:
    """Every project under the data home, by name."""
    folder = projects_dir()
    if not folder.exists():
        return []
    infos = []
    for root in sorted(folder.iterdir(), key=lambda p: p.name.lower()):
        if root.name.startswith(".") or not (root / "project.db").exists():
            continue
        project = Project(root.name, root)
        if role_in(project) is not None:  # only the projects the acting person is a member of
            infos.append(project.info())
        project.store.close()
    return infos


def delete_project(name: str) -> None:
    """Delete a project and everything in it."""
    project = open_project(name)
    require(project, Action.DELETE_PROJECT)
    record("delete project", project, f"deleted project '{project.name}' with {sum(project.store.count_inputs().values())} inputs")
    project.store.close()
    # Rename first so the project disappears at once, even if removing its files takes a while.
    doomed = projects_dir() / f".deleting-{uuid.uuid4().hex}"
    try:
        os.rename(project.root, doomed)
    except OSError as e:
        raise (as_storage_error(e, projects_dir()) or e) from e
    drop_cached_indexes(project.root)
    shutil.rmtree(doomed, ignore_errors=True)


def rename_project(old: str, new: str) -> Project:
    """Rename a project; ProjectError if the new name is invalid or taken."""
    project = open_project(old)
    require(project, Action.RENAME_PROJECT)
    new = validate_project_name(new)
    target = projects_dir() / new
    # On a case-insensitive disk "foo" and "Foo" are one folder (a rename of its spelling); anywhere else
    # an existing folder is another project.
    taken = _find_same_name(new, except_root=project.root)
    if taken is not None or (target.exists() and not os.path.samefile(target, project.root)):
        raise ProjectError(f"a project named '{taken or new}' already exists")
    project.store.set_meta("name", new)
    project.store.close()
    drop_cached_indexes(project.root)
    try:
        os.rename(project.root, target)
    except OSError as e:
        project.store.set_meta("name", project.name)
        raise (as_storage_error(e, projects_dir()) or e) from e
    return Project(new, target)
