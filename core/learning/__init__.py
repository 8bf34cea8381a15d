"""Learning concepts from labelled embeddings: heads and their fitting, candidates, folds, metrics,
calibration, choosing a head per concept (``selection``), training a model version (``training``) and
version files on disk: loading, the active version, thresholds set by hand (``models``).
"""

from core.learning.heads import ENSEMBLE, HEAD_KINDS, LINEAR, NEAREST, NO_HEAD, ZERO_SHOT, HeadConfig
from core.learning.metrics import NONE_LABEL, ConceptMetrics, Evaluation, binary_metrics, evaluate_probabilities
from core.learning.models import (
    MODEL_FORMAT,
    Model,
    get_threshold_origins,
    get_threshold_overrides,
    load_model,
    reset_threshold,
    resolve_version,
    set_active_version,
    set_threshold,
    thresholds_for,
)
from core.learning.selection import NOT_EVALUATED, TOO_FEW
from core.learning.training import plan_training, train

__all__ = [
    "ConceptMetrics",
    "ENSEMBLE",
    "Evaluation",
    "HEAD_KINDS",
    "HeadConfig",
    "LINEAR",
    "MODEL_FORMAT",
    "Model",
    "NEAREST",
    "NONE_LABEL",
    "NOT_EVALUATED",
    "NO_HEAD",
    "TOO_FEW",
    "ZERO_SHOT",
    "binary_metrics",
    "evaluate_probabilities",
    "get_threshold_origins",
    "get_threshold_overrides",
    "load_model",
    "plan_training",
    "resolve_version",
    "set_active_version",
    "reset_threshold",
    "set_threshold",
    "thresholds_for",
    "train",
]
