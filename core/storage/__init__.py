"""Where a project lives on disk: the SQLite store (``store``, split into ``database``, ``inputs``,
``concepts`` and ``versions``), the FAISS index caches (``index``) and project folders (``projects``).
"""

from core.storage.concepts import validate_concept_name
from core.storage.index import load_index
from core.storage.inputs import InputRecord, NewInput
from core.storage.projects import Project, create_project, delete_project, list_projects, open_project, rename_project
from core.storage.store import Store

__all__ = [
    "InputRecord",
    "NewInput",
    "Project",
    "Store",
    "create_project",
    "delete_project",
    "list_projects",
    "load_index",
    "open_project",
    "rename_project",
    "validate_concept_name",
]
