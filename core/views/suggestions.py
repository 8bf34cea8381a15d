"""Label suggestions: unlabelled inputs a concept's model (or, before one, its examples) actually believes in.

A list of "best guesses" with scores of 0.04 invites a person to click "All 12 are ant" over twelve bees.
So a candidate must clear a bar: the concept's threshold in force, when a model scores the concept; before
that, being about as close to the concept's examples as they are to one another (each example against the
mean of the others, with ``EXAMPLE_SLACK``). Inputs labelled for the concept, and in a project of one concept per input those labelled
positive for a rival, are never suggested. When nothing clears the bar the answer says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import ConceptError, ModelVersionError
from core.learning.heads import NO_HEAD
from core.learning.models import thresholds_for
from core.prediction import get_model
from core.storage.concepts import validate_concept_name
from core.storage.projects import Project
from core.views.gallery import GalleryItem, score_stored_inputs

MIN_EXAMPLES = 2  # before a model, the bar needs examples to compare with one another
# Before a model, a candidate may lie this many times as far (in cosine distance) from the examples' mean
# as the least typical example lies from the mean of the others: a few examples never span all of a concept.
EXAMPLE_SLACK = 1.5


@dataclass(frozen=True)
class Suggestions:
    """Candidates, best first, each scored at or above ``bar``; ``basis`` says what scored them, ``note`` why none did."""

    items: list[GalleryItem]
    basis: str  # "model" or "examples"
    bar: float | None
    note: str = ""


def suggest_labels(project: Project, concept: str, k: int = 12) -> Suggestions:
    """Up to ``k`` unlabelled inputs that clear the concept's bar, best first.

    Raises:
        ConceptError: no concept of that name.
    """
    name = validate_concept_name(concept)
    cid = project.store.concept_id(name)
    if cid is None:
        raise ConceptError(f"no concept named '{name}'")
    annotations = project.store.load_annotations()
    excluded = {i for i, c, _ in annotations if c == cid}
    if project.exclusive:  # one concept per input: an input that is another concept is not this one
        excluded |= {i for i, c, v in annotations if c != cid and v > 0}
    by_model = _rank_by_model(project, name, cid)
    if by_model is not None:
        ranked, bar, basis = *by_model, "model"
    else:
        ranked, bar = _rank_by_examples(project, cid, [i for i, c, v in annotations if c == cid and v > 0])
        basis = "examples"
    picks = [(i, s) for i, s in ranked if i not in excluded and bar is not None and s >= bar][:k]
    records = project.store.get_inputs(i for i, _ in picks)
    labels = project.store.labels_of_inputs(records)
    items = [GalleryItem(records[i], labels[i], name, round(s, 6)) for i, s in picks if i in records]
    return Suggestions(items, basis, bar, "" if items else _explain_none(name, basis, bar))


def _rank_by_model(project: Project, name: str, cid: int) -> tuple[list[tuple[int, float]], float] | None:
    """(inputs by the model's score for the concept, its threshold), or None when no model scores the concept."""
    try:
        model = get_model(project)
    except ModelVersionError:
        return None
    bars = []
    for space, heads in model.spaces.items():
        columns = [j for j, c in enumerate(heads.concept_ids) if int(c) == cid and heads.kinds[j] != NO_HEAD]
        if columns:
            bars.append(float(thresholds_for(project, model, space)[columns[0]]))
    if not bars:
        return None
    # Every stored input the model scores for the concept (a space without its head gives no score).
    ranked = [(i, s[name]) for i, s in score_stored_inputs(project).scores.items() if name in s]
    # One bar per space; a concept trained in two spaces keeps the stricter, so no space's weak guesses pass.
    return sorted(ranked, key=lambda x: -x[1]), max(bars)


def _rank_by_examples(project: Project, cid: int, positives: list[int]) -> tuple[list[tuple[int, float]], float | None]:
    """(inputs by cosine to the mean of the positives, the bar: ``EXAMPLE_SLACK`` times the least typical example's distance)."""
    ranked: list[tuple[int, float]] = []
    bars = []
    for space in project.store.spaces():
        _, examples = project.store.load_embeddings(space, positives)
        if len(examples) < MIN_EXAMPLES:
            continue
        total = examples.sum(axis=0)
        others = total[None, :] - examples  # each example left out of its own mean
        others /= np.linalg.norm(others, axis=1, keepdims=True).clip(min=1e-12)
        least_typical = float(np.min(np.sum(examples * others, axis=1)))
        bars.append(1.0 - EXAMPLE_SLACK * (1.0 - least_typical))
        query = total / (np.linalg.norm(total) or 1.0)
        ids, vectors = project.store.load_embeddings(space)
        ranked += [(i, s) for i, s in zip(ids.tolist(), (vectors @ query).tolist())]
    return sorted(ranked, key=lambda x: -x[1]), (min(bars) if bars else None)


def _explain_none(name: str, basis: str, bar: float | None) -> str:
    if basis == "model":
        return f"no likely candidates: no unlabelled input scores above {name}'s threshold ({bar:.2f})"
    if bar is None:
        return f"label at least {MIN_EXAMPLES} examples of {name} (or train a model) to get suggestions"
    return f"no likely candidates: no unlabelled input is about as close to your {name} examples as they are to each other"
