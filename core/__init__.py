"""conceptlab's engine: teach a concept from a few labelled examples on top of a frozen embedding model.

The functions a script needs, the same ones the command line and the pages call::

    import core

    project = core.create_project("pets", embedder="lite")
    core.ingest(project, core.read_inputs(["photos/"], core.ReadConfig(labels_from_folders=True)))
    core.label_inputs(project, [3, 4], "cat", -1)  # inputs 3 and 4 are not cats
    result = core.train(project)
    for prediction in core.predict(project, core.read_inputs(["new.jpg"])):
        print(prediction)
    core.export_model_to(project, "pets.conceptlab")

``docs/ARCHITECTURE.md`` maps the packages behind these names.
"""

__version__ = "0.1.0"

from core.embedding import describe_embedders, load_embedder
from core.errors import ConceptlabError
from core.evaluate import evaluate_inputs
from core.exchange import export_model, export_model_to, import_model, read_model_file
from core.ingestion import ingest
from core.inputs import ReadConfig, VideoConfig, read_inputs, read_texts, read_uploads
from core.learning import HeadConfig, load_model, set_threshold, train
from core.prediction import predict, search_similar
from core.storage import create_project, delete_project, list_projects, open_project, rename_project
from core.views import label_inputs

__all__ = [
    "ConceptlabError",
    "HeadConfig",
    "ReadConfig",
    "VideoConfig",
    "create_project",
    "delete_project",
    "describe_embedders",
    "evaluate_inputs",
    "export_model",
    "export_model_to",
    "import_model",
    "ingest",
    "label_inputs",
    "list_projects",
    "load_embedder",
    "load_model",
    "open_project",
    "predict",
    "read_inputs",
    "read_model_file",
    "read_texts",
    "read_uploads",
    "rename_project",
    "search_similar",
    "set_threshold",
    "train",
]
