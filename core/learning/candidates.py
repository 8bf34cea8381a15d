"""The candidate heads cross-validation compares, and how one set of training rows fits them all.

A candidate is a name: a head kind (``heads.py``), sometimes with its settings, such as
``linear(wd=0.001)`` or ``tip-adapter(alpha=2,beta=5.5)``; ``prototype+unlabelled`` is the
prototype head refined with the project's unlabelled inputs. ``CandidateFitter`` fits the
costly parts once per set of training rows (features, linear layers, prototypes, references)
and assembles ``SpaceHeads`` for any candidate from them. ``ensemble(linear=a,nearest=b)``
needs no fitting of its own: ``selection.py`` weighs the two heads' out-of-fold logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from core.learning.fitting import estimate_reference, fit_linear, fit_prototypes, refine_prototypes
from core.learning.heads import (
    ENSEMBLE,
    LINEAR,
    NEAREST,
    NEAREST_K,
    NO_HEAD,
    PROTOTYPE,
    TIP_ADAPTER,
    ZERO_SHOT,
    HeadConfig,
    SpaceHeads,
    transform_features,
)

REFINED = "prototype+unlabelled"


@dataclass(frozen=True)
class SpaceData:
    """Everything one space's heads are fitted from.

    Attributes:
        labels: (m, C) +1 / -1 / 0 per labelled input, implicit negatives included.
        unlabelled: (u, d) raw embeddings of the space's unlabelled inputs (a sample).
        defaults: per concept, the head used when nothing can be measured, and preferred on ties.
        zero_shot, zero_shot_background: (C, d), (d,) text embeddings; empty without zero-shot.
    """

    space: str
    names: list[str]
    concept_ids: np.ndarray
    exclusive: bool
    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    unlabelled: np.ndarray
    defaults: list[str]
    zero_shot: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    zero_shot_background: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def __post_init__(self) -> None:
        m, c = len(self.ids), len(self.names)
        if self.labels.shape != (m, c) or len(self.concept_ids) != c or len(self.defaults) != c:
            raise ValueError(f"labels must be (inputs, concepts) = ({m}, {c}), with one id and one default head per concept")
        if self.vectors.ndim != 2 or len(self.vectors) != m:
            raise ValueError("vectors must hold one row per labelled input")
        if self.unlabelled.ndim != 2 or (len(self.unlabelled) and self.unlabelled.shape[1] != self.vectors.shape[1]):
            raise ValueError("unlabelled vectors must be (u, d) with the labelled vectors' d")

    @property
    def has_zero_shot(self) -> bool:
        return self.zero_shot.size > 0


def default_heads(positives: np.ndarray, negatives: np.ndarray, exclusive: bool, zero_shot: bool, min_linear: int) -> list[str]:
    """The head each concept gets when nothing can be measured, and keeps on ties.

    No examples: zero-shot (or none); fewer than ``min_linear`` positives or no negatives:
    the Tip-Adapter cache on zero-shot, or class prototypes without zero-shot; otherwise linear.
    Exclusive concepts share one head: linear only when every trained concept has enough.
    """
    trained = positives > 0
    few = TIP_ADAPTER if zero_shot else PROTOTYPE
    enough = trained.sum() >= 2 and (positives[trained] >= min_linear).all() if exclusive else None
    heads = []
    for pos, neg in zip(positives, negatives):
        if pos == 0:
            heads.append(ZERO_SHOT if zero_shot else NO_HEAD)
        elif exclusive:
            heads.append(LINEAR if enough else few)
        else:
            heads.append(LINEAR if pos >= min_linear and neg > 0 else few)
    return heads


def weight_decay_of(candidate: str, config: HeadConfig) -> float:
    return float(candidate.split("wd=")[1].rstrip(")")) if "wd=" in candidate else config.weight_decay


def kind_of(candidate: str) -> str:
    return PROTOTYPE if candidate == REFINED else candidate.split("(")[0]


def parameters_of(candidate: str) -> tuple[float, ...]:
    """The numbers in a candidate's name, in order: ``tip-adapter(alpha=2,beta=5.5)`` gives (2.0, 5.5)."""
    if "(" not in candidate:
        return ()
    return tuple(float(part.split("=")[1]) for part in candidate[candidate.index("(") + 1 : -1].split(","))


class CandidateFitter:
    """Fits every candidate head on one set of training rows, sharing the costly parts."""

    def __init__(self, data: SpaceData, rows: np.ndarray, candidates: list[str], head_config: HeadConfig, center, power) -> None:
        self.data, self.rows, self.config = data, rows, head_config
        self.center, self.power = center, power
        self.labels = data.labels[rows]
        self.vectors = data.vectors[rows]
        self.z = transform_features(self.vectors, center, power)
        c, d = self.labels.shape[1], data.vectors.shape[1]
        self.trained = (self.labels > 0).any(axis=0)
        self.linear: dict[float, tuple[np.ndarray, np.ndarray]] = {}
        decays = {weight_decay_of(x, head_config) for x in candidates if kind_of(x) in (LINEAR, ENSEMBLE)}
        if any(kind_of(x) == TIP_ADAPTER for x in candidates) and not data.has_zero_shot:
            decays.add(head_config.weight_decay)
        for decay in sorted(decays):
            self.linear[decay] = self._fit_linear(decay)
        self.prototypes, self.negatives = fit_prototypes(self.z, self.labels)
        self.unlabelled_z = transform_features(data.unlabelled, center, power) if len(data.unlabelled) else np.zeros((0, d), np.float32)
        self.refined = refine_prototypes(self.prototypes, self.z, self.labels, self.unlabelled_z) if REFINED in candidates else None
        self.reference = {NEAREST: np.zeros(c, np.float32), PROTOTYPE: np.zeros(c, np.float32)}
        for j in np.flatnonzero(self.trained & ~(self.labels < 0).any(axis=0)):
            positives = self.labels[:, j] > 0
            self.reference[NEAREST][j] = estimate_reference(self.vectors[positives], data.unlabelled, NEAREST_K)
            self.reference[PROTOTYPE][j] = _prototype_reference(self.z[positives], self.prototypes[j], self.unlabelled_z)

    def _fit_linear(self, decay: float) -> tuple[np.ndarray, np.ndarray]:
        c, d = self.labels.shape[1], self.z.shape[1]
        weights, bias = np.zeros((c, d), np.float32), np.zeros(c, np.float32)
        columns = np.flatnonzero(self.trained)
        config = replace(self.config, weight_decay=decay)
        if self.data.exclusive:
            single = (self.labels[:, columns] > 0).sum(axis=1) == 1
            if len(columns) < 2 or single.sum() < 2:
                return weights, bias
            targets = np.argmax(self.labels[single][:, columns] > 0, axis=1)
            w, b = fit_linear(self.z[single], targets, exclusive=True, config=config, n_classes=len(columns))
        else:
            if not (self.labels[:, columns] < 0).any():
                return weights, bias
            w, b = fit_linear(self.z, self.labels[:, columns], exclusive=False, config=config)
        weights[columns], bias[columns] = w, b
        return weights, bias

    def assemble(self, kinds: list[str], refined: bool = False, tip: np.ndarray | None = None, decay: float | None = None) -> SpaceHeads:
        """Heads with these kinds per concept, fitted on this fitter's rows."""
        data = self.data
        c, d = len(kinds), data.vectors.shape[1]
        weights, bias = self.linear.get(
            self.config.weight_decay if decay is None else decay, (np.zeros((c, d), np.float32), np.zeros(c, np.float32))
        )
        reference = np.array([self.reference.get(k, np.zeros(c))[j] for j, k in enumerate(kinds)], np.float32)
        return SpaceHeads(
            concept_ids=data.concept_ids,
            kinds=list(kinds),
            exclusive=data.exclusive,
            weights=weights,
            bias=bias,
            memory=self.vectors.astype(np.float32),
            memory_ids=data.ids[self.rows],
            memory_labels=self.labels,
            reference=reference,
            zero_shot=data.zero_shot.astype(np.float32),
            zero_shot_background=data.zero_shot_background.astype(np.float32),
            zero_shot_weight=np.zeros(c, np.float32),
            center=self.center,
            feature_power=self.power,
            prototypes=self.refined if refined and self.refined is not None else self.prototypes,
            negative_prototypes=self.negatives,
            tip=tip if tip is not None else np.zeros((c, 2), np.float32),
        )

    def kinds_for(self, candidate: str) -> list[str]:
        """Per concept: the candidate's kind where it applies, else zero-shot (where it mixes) or no head."""
        kind = kind_of(candidate)
        # Exclusive scores share one softmax: zero-shot logits only mix with heads built on them.
        zero_shot_mixes = self.data.has_zero_shot and (not self.data.exclusive or kind in (ZERO_SHOT, TIP_ADAPTER))
        out = []
        for j, default in enumerate(self.data.defaults):
            if self.trained[j] and default not in (ZERO_SHOT, NO_HEAD):
                out.append(kind)
            else:
                out.append(ZERO_SHOT if zero_shot_mixes else NO_HEAD)
        return out

    def tip_parts(self, queries: np.ndarray, betas: tuple[float, ...]) -> tuple[np.ndarray, dict[float, np.ndarray], np.ndarray]:
        """(base logits, {beta: cache term}, alpha unit per concept) of the Tip-Adapter head."""
        base_kind = ZERO_SHOT if self.data.has_zero_shot else LINEAR
        base_heads = self.assemble(self.kinds_for(base_kind))
        base = base_heads.logits(queries)
        own = base_heads.logits(self.vectors)
        unit = np.array([np.std(col[np.isfinite(col)]) if np.isfinite(col).sum() > 1 else 1.0 for col in own.T])
        unit = np.where(unit > 1e-6, unit, 1.0)
        caches = {}
        for beta in betas:
            tip = np.stack([np.ones(len(unit)), np.full(len(unit), beta)], axis=1).astype(np.float32)
            caches[beta] = self.assemble(self.kinds_for(TIP_ADAPTER), tip=tip).logits(queries) - base
        return base, caches, unit


def _prototype_reference(positives: np.ndarray, prototype: np.ndarray, background: np.ndarray) -> float:
    within = float((positives @ prototype).mean())
    outside = float((background @ prototype).mean()) if len(background) else within - 0.2
    return (within + outside) / 2


def list_candidates(
    data: SpaceData, linear_decays: tuple[float, ...], tip_alphas: tuple[float, ...], tip_betas: tuple[float, ...], refine: bool = True
) -> list[str]:
    """Every candidate that can apply to this space, in order of preference on ties."""
    names = [NEAREST, PROTOTYPE, LINEAR, *(f"{LINEAR}(wd={wd:g})" for wd in linear_decays)]
    if refine and data.exclusive and len(data.unlabelled):
        names.insert(2, REFINED)
    if data.has_zero_shot:
        names.insert(0, ZERO_SHOT)
    names += [f"{TIP_ADAPTER}(alpha={a:g},beta={b:g})" for b in tip_betas for a in tip_alphas]
    return names
