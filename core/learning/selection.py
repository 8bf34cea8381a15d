"""Choose each concept's head by cross-validation, then calibrate it, threshold it and measure it.

For one embedding space: the labelled inputs are split into stratified folds by input (never
by row: inputs with identical embeddings stay together, so a duplicate cannot leak from
training into testing); every candidate head is fitted on each fold's training part and
scores its test part. These out-of-fold logits decide the winner (``choice.py``), fit the
calibration, give the F1-maximising thresholds and the ``Evaluation``.

The "unknown" cut-off comes from the same folds: each held-out input's similarity to the nearest
input of its fold's training part, and a cut-off that a stated share of them pass
(``calibration.fit_unknown_cutoff``). These folds rather than leave-one-out over every labelled
row: they keep an input's twins (same input, identical embedding) on its side, and above 10
inputs they leave fewer inputs to match, so held-out similarities err low, as a new input's may
(people often label a batch from one source, then predict on others); leave-one-out over rows
lets twins vouch for each other at similarity 1 and sets the cut-off higher than new inputs of
the same concepts reach.
The winner is then refitted on every labelled input. Arrays in, arrays out: ``training.py``
reads and writes the store; ``candidates.py`` fits the candidates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from core.learning.calibration import UnknownCutoff, fit_platt, fit_temperature, fit_unknown_cutoff
from core.learning.candidates import (
    REFINED,
    CandidateFitter,
    SpaceData,
    kind_of,
    list_candidates,
    parameters_of,
    weight_decay_of,
)
from core.learning.choice import HeadChoice, choose_default_candidate, choose_heads, combine_ensemble
from core.learning.folds import fold_strata, group_rows, make_folds
from core.learning.heads import (
    DEFAULT_THRESHOLD,
    ENSEMBLE,
    HEAD_KINDS,
    LINEAR,
    NEAREST,
    NO_HEAD,
    PROTOTYPE,
    TIP_ADAPTER,
    ZERO_SHOT,
    HeadConfig,
    ProgressCallback,
    SpaceHeads,
    fit_feature_transform,
    transform_features,
)
from core.learning.metrics import Evaluation, best_threshold, evaluate_probabilities

log = logging.getLogger(__name__)

TOO_FEW = "too few examples to measure"
NOT_EVALUATED = "not cross-validated"


@dataclass(frozen=True)
class SelectionConfig:
    """How cross-validation runs; the caps keep training to seconds on a laptop."""

    max_folds: int = 5
    loo_max_rows: int = 10  # up to this many labelled inputs: leave-one-out
    max_rows: int = 2000  # cross-validate on a stratified sample of at most this many inputs
    unlabelled_sample: int = 2000
    margin: float = 0.005  # a head must beat the default by more than this to replace it
    challenger_standard_errors: float = 0.5  # exclusive spaces: and by this many standard errors of its lead
    linear_decays: tuple[float, ...] = (1e-3, 1e-2)  # besides HeadConfig.weight_decay
    decay_search_max_rows: int = 1000  # above this, weight decay matters little: only the default is tried
    # Prototypes refined by unlabelled inputs are tried while some concept has at most this
    # many examples (at 64 per concept they lost to linear or nearest-neighbour heads on all
    # three benchmark datasets) and the space at most this many labelled inputs (propagating
    # labels would become the costliest part of a fold).
    refine_max_positives: int = 32
    refine_max_rows: int = 1000
    tip_alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    tip_betas: tuple[float, ...] = (1.0, 5.5)
    # At least this share of held-out labelled inputs must not be called unknown; an input is
    # unknown when less similar to every labelled example than the rest (see fit_unknown_cutoff).
    unknown_keep_rate: float = 0.95
    unknown_slack: float = 0.02  # too few held-out inputs for the rate: the cut-off is this far below the lowest
    kinds: tuple[str, ...] = ()  # the head kinds that may compete (empty: all), e.g. (LINEAR,) to force linear heads
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.unknown_keep_rate < 1.0:
            raise ValueError(f"unknown_keep_rate must lie strictly between 0 and 1, not {self.unknown_keep_rate}")
        if not self.unknown_slack >= 0.0:
            raise ValueError(f"unknown_slack must be 0 or more, not {self.unknown_slack}")
        unknown = set(self.kinds) - set(HEAD_KINDS)
        if unknown or NO_HEAD in self.kinds:
            raise ValueError(f"kinds must be among {HEAD_KINDS[:-1]}, not {sorted(unknown | ({NO_HEAD} & set(self.kinds)))}")


@dataclass
class SpaceFit:
    """The result for one space: heads to save, how they did, why each was chosen."""

    heads: SpaceHeads
    evaluation: Evaluation
    choices: list[HeadChoice]
    oof_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    oof_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    oof_labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8))
    oof_nearest: np.ndarray = field(default_factory=lambda: np.zeros(0))  # what the "unknown" cut-off was set on


def _plan_folds(data: SpaceData, rows: np.ndarray, config: SelectionConfig) -> tuple[str, int] | None:
    return _fold_plan(data.labels[rows], data.exclusive, config)


def _fold_plan(labels: np.ndarray, exclusive: bool, config: SelectionConfig) -> tuple[str, int] | None:
    pos, neg = (labels > 0).sum(axis=0), (labels < 0).sum(axis=0)
    measurable = (pos >= 2) & ((neg >= 1) | exclusive)
    if not measurable.any() or len(labels) < 3:
        return None
    if len(labels) <= config.loo_max_rows:
        return "leave-one-out", len(labels)
    k = int(min(config.max_folds, max(2, pos[measurable].min())))
    return f"{k}-fold cross-validation", k


def fit_space(
    data: SpaceData,
    head_config: HeadConfig = HeadConfig(),
    config: SelectionConfig = SelectionConfig(),
    progress: ProgressCallback | None = None,
) -> SpaceFit:
    """Cross-validate the candidate heads of one space, pick, calibrate and refit them on all rows.

    With ``head_config.evaluate`` off, nothing is cross-validated: every concept gets its
    default head (or the first of ``config.kinds`` where that excludes the default), identity
    calibration and threshold 0.5, and the evaluation says it was not measured.
    """
    report = progress or (lambda fraction, message: None)
    everything = np.concatenate([data.vectors, data.unlabelled]) if len(data.unlabelled) else data.vectors
    center, power = fit_feature_transform(everything)
    rows = _cv_rows(data, config)
    if not head_config.evaluate:
        report(0.0, "fitting the default heads on every labelled input (no cross-validation)")
        return _fit_unmeasured(data, head_config, center, power, config, rows, evaluated=False)
    plan = _plan_folds(data, rows, config)
    decays = config.linear_decays if len(rows) <= config.decay_search_max_rows else ()
    positives = (data.labels[rows] > 0).sum(axis=0)
    refine = len(rows) <= config.refine_max_rows and (positives[positives > 0] <= config.refine_max_positives).any()
    candidates = _allowed(list_candidates(data, decays, config.tip_alphas, config.tip_betas, refine), config)
    if plan is None:
        return _fit_unmeasured(data, head_config, center, power, config, rows)
    method, k = plan
    labels = data.labels[rows]
    folds = make_folds(group_rows(data.ids[rows], data.vectors[rows]), fold_strata(labels), k, config.seed)
    n, c = labels.shape
    oof = {name: np.full((n, c), np.nan) for name in candidates}
    # Fold centres come from sums: all inputs' transformed features less the held-out ones'.
    powered = transform_features(data.vectors, np.zeros(0, np.float32), power)
    total = powered.sum(axis=0) + transform_features(data.unlabelled, np.zeros(0, np.float32), power).sum(axis=0)
    count = len(data.vectors) + len(data.unlabelled)
    for f, (train, test) in enumerate(folds):
        report(f / len(folds), f"comparing heads on examples held out: round {f + 1} of {len(folds)}")
        train_rows, test_rows = rows[train], rows[test]
        # The centre is refitted without the held-out inputs: they must not shape the features either.
        held_out = data.vectors[test_rows]
        fold_center = ((total - powered[test_rows].sum(axis=0)) / max(count - len(test_rows), 1)).astype(np.float32)
        fitter = CandidateFitter(data, train_rows, candidates, head_config, fold_center, power)
        queries = held_out
        for name in candidates:
            if kind_of(name) != TIP_ADAPTER:
                heads = fitter.assemble(fitter.kinds_for(name), refined=name == REFINED, decay=weight_decay_of(name, head_config))
                oof[name][test] = heads.logits(queries)
        if any(kind_of(name) == TIP_ADAPTER for name in candidates):
            base, caches, unit = fitter.tip_parts(queries, config.tip_betas)
            for beta in config.tip_betas:
                for alpha in config.tip_alphas:
                    oof[f"{TIP_ADAPTER}(alpha={alpha:g},beta={beta:g})"][test] = base + alpha * unit * caches[beta]
    if data.exclusive and LINEAR in oof and NEAREST in oof and (not config.kinds or ENSEMBLE in config.kinds):
        ensemble = combine_ensemble(oof[LINEAR], oof[NEAREST], labels)
        if ensemble is not None:
            oof[ensemble[0]] = ensemble[1]
            candidates.append(ensemble[0])
    choices, chosen = choose_heads(data, labels, oof, candidates, config.margin, config.challenger_standard_errors)
    calibration, probabilities = _calibrate(data, labels, chosen)
    thresholds = np.full(c, DEFAULT_THRESHOLD, np.float32)
    for j in range(c):
        keep = (labels[:, j] != 0) & ~np.isnan(probabilities[:, j])
        # With a single positive, that one held-out input would set the threshold alone: keep 0.5.
        if (labels[keep, j] > 0).sum() >= 2 and (labels[keep, j] < 0).any():
            thresholds[j] = best_threshold(labels[keep, j] > 0, probabilities[keep, j])
    nearest = _held_out_nearest(data.vectors[rows], folds)
    cutoff = fit_unknown_cutoff(nearest, config.unknown_keep_rate, config.unknown_slack)
    note = "" if len(rows) == len(data.ids) else f"cross-validated on a sample of {len(rows)} of {len(data.ids)} labelled inputs"
    unknown = nearest < cutoff.cutoff
    evaluation = evaluate_probabilities(
        data.space, data.names, labels, probabilities, thresholds, data.exclusive, method, len(folds), unknown=unknown, note=note
    )
    report(1.0, "fitting the chosen heads on every labelled input")
    heads = _refit(data, head_config, center, power, choices, calibration, thresholds, cutoff)
    return SpaceFit(heads, evaluation, choices, data.ids[rows], probabilities, labels, nearest)


def plan_comparisons(
    labels: np.ndarray,
    exclusive: bool,
    zero_shot: bool,
    head_config: HeadConfig = HeadConfig(),
    config: SelectionConfig = SelectionConfig(),
) -> list[tuple[str, ...]]:
    """Per concept, the head kinds ``fit_space`` will compare for it, in order; empty: it keeps its default head untried.

    ``labels``: (m, C) +1 / -1 / 0 per labelled input of the space, implicit negatives included.
    A concept is compared when the space can be cross-validated, it has examples and (unless its
    concepts are exclusive) negatives: without both, no score can tell one head from another.
    """
    c = labels.shape[1]
    if not head_config.evaluate or _fold_plan(labels, exclusive, config) is None:
        return [()] * c
    kinds = [ZERO_SHOT] * zero_shot + [NEAREST, PROTOTYPE, LINEAR, TIP_ADAPTER]
    kinds = [k for k in kinds if not config.kinds or k in config.kinds]
    if exclusive and LINEAR in kinds and NEAREST in kinds and (not config.kinds or ENSEMBLE in config.kinds):
        kinds.append(ENSEMBLE)
    pos, neg = (labels > 0).sum(axis=0), (labels < 0).sum(axis=0)
    compared = (pos > 0) & (exclusive | (neg > 0))
    return [tuple(kinds) if compared[j] else () for j in range(c)]


def _cv_rows(data: SpaceData, config: SelectionConfig) -> np.ndarray:
    n = len(data.ids)
    if n <= config.max_rows:
        return np.arange(n)
    # A stratified sample: every concept keeps its share of the rows.
    strata = fold_strata(data.labels)
    rng = np.random.default_rng(config.seed)
    keep = [
        rng.permutation(np.flatnonzero(strata == s))[: max(2, round(config.max_rows * (strata == s).mean()))] for s in np.unique(strata)
    ]
    return np.sort(np.concatenate(keep))


def _calibrate(data: SpaceData, labels: np.ndarray, chosen: dict) -> tuple[np.ndarray, np.ndarray]:
    """(calibration (C, 2), out-of-fold probabilities (n, C)) of the chosen heads."""
    n, c = labels.shape
    calibration = np.tile(np.array([1.0, 0.0], np.float32), (c, 1))
    probabilities = np.full((n, c), np.nan)
    columns = sorted(chosen)
    if not columns:
        return calibration, probabilities
    logits = np.stack([chosen[j][1][:, j] for j in columns], axis=1)
    if data.exclusive:
        single = (labels[:, columns] > 0).sum(axis=1) == 1
        finite = np.nan_to_num(logits, nan=-1e3)
        t = fit_temperature(finite[single], np.argmax(labels[single][:, columns] > 0, axis=1)) if single.any() else 1.0
        calibration[:, 0] = 1.0 / t
        scaled = finite / t
        scaled -= scaled.max(axis=1, keepdims=True)
        probabilities[:, columns] = np.exp(scaled) / np.exp(scaled).sum(axis=1, keepdims=True)
        return calibration, probabilities
    for i, j in enumerate(columns):
        rows = labels[:, j] != 0
        z = np.nan_to_num(logits[:, i], nan=-1e3)
        a, b = fit_platt(z[rows], labels[rows, j] > 0)
        calibration[j] = (a, b)
        probabilities[:, j] = 1.0 / (1.0 + np.exp(-np.clip(a * z + b, -60, 60)))
    return calibration, probabilities


def _held_out_nearest(vectors: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(n,) each row's similarity to the nearest row of the training part of the fold holding it out; NaN if none."""
    nearest = np.full(len(vectors), np.nan)
    for train, test in folds:
        if len(train):
            nearest[test] = (vectors[test] @ vectors[train].T).max(axis=1)
    return nearest


def _allowed(candidates: list[str], config: SelectionConfig) -> list[str]:
    if not config.kinds:
        return candidates
    allowed = [name for name in candidates if kind_of(name) in config.kinds]
    if not allowed:
        raise ValueError(f"none of the head kinds {config.kinds} applies to this space: {sorted({kind_of(c) for c in candidates})}")
    return allowed


def _forced_default(default: str, config: SelectionConfig) -> str:
    """The default head, unless ``config.kinds`` leaves it out (concepts without examples keep theirs)."""
    if not config.kinds or default in config.kinds or default in (ZERO_SHOT, NO_HEAD):
        return default
    return config.kinds[0]


def _fit_unmeasured(
    data: SpaceData,
    head_config: HeadConfig,
    center,
    power,
    config: SelectionConfig = SelectionConfig(),
    rows: np.ndarray | None = None,
    evaluated: bool = True,
) -> SpaceFit:
    """Default heads, identity calibration, threshold 0.5: nothing can (or should) be measured."""
    c = len(data.names)
    defaults = [_forced_default(d, config) for d in data.defaults]
    choices = [HeadChoice(name, d, choose_default_candidate(d, data), "", {}, None) for name, d in zip(data.names, defaults)]
    cutoff = UnknownCutoff(float("-inf"), 0, 0)
    # Nothing else is cross-validated here, but the cut-off for "unknown" still is, on folds of a
    # sample (all pairs of 50,000 inputs do not fit in memory) split by input as everywhere else.
    rows = rows if rows is not None else _cv_rows(data, config)
    if len(rows) >= 2:
        groups = group_rows(data.ids[rows], data.vectors[rows])
        distinct = len(np.unique(groups))
        k = distinct if distinct <= config.loo_max_rows else config.max_folds  # as _plan_folds: leave-one-out for a few
        if k >= 2:
            folds = make_folds(groups, fold_strata(data.labels[rows]), k, config.seed)
            cutoff = fit_unknown_cutoff(_held_out_nearest(data.vectors[rows], folds), config.unknown_keep_rate, config.unknown_slack)
    calibration = np.tile(np.array([1.0, 0.0], np.float32), (c, 1))
    heads = _refit(data, head_config, center, power, choices, calibration, np.full(c, DEFAULT_THRESHOLD, np.float32), cutoff)
    choices = [HeadChoice(ch.concept, kind, ch.candidate, "", {}, None) for ch, kind in zip(choices, heads.kinds)]
    if evaluated:
        method, note = TOO_FEW, "label at least 2 examples of a concept (and some negatives or another concept) to measure it"
    else:
        method, note = NOT_EVALUATED, "trained without cross-validation: default heads, thresholds at 0.5, no quality figures"
    return SpaceFit(heads, Evaluation(data.space, method, inputs=len(data.ids), exclusive=data.exclusive, note=note), choices)


def _refit(data, head_config, center, power, choices, calibration, thresholds, cutoff: UnknownCutoff) -> SpaceHeads:
    by_name = {ch.concept: ch for ch in choices}
    winners = [by_name[name].candidate for name in data.names]
    fitter = CandidateFitter(data, np.arange(len(data.ids)), winners, head_config, center, power)
    trained = [j for j in range(len(winners)) if fitter.trained[j] and data.defaults[j] not in (ZERO_SHOT, NO_HEAD)]
    # Concepts without examples follow the kind of the trained ones (exclusive: one softmax) or zero-shot.
    others = fitter.kinds_for(winners[trained[0]] if trained and data.exclusive else ZERO_SHOT)
    kinds = [kind_of(winners[j]) if j in trained else others[j] for j in range(len(winners))]
    tip = np.zeros((len(winners), 2), np.float32)
    base_unit = None
    for j, winner in enumerate(winners):
        if kinds[j] == TIP_ADAPTER and "(" in winner:
            if base_unit is None:
                base_unit = fitter.tip_parts(data.vectors[:1], (1.0,))[2]
            alpha, beta = parameters_of(winner)
            tip[j] = (alpha * base_unit[j], beta)
        elif kinds[j] == ENSEMBLE:
            tip[j] = parameters_of(winner)
    decay = next((weight_decay_of(w, head_config) for w in winners if kind_of(w) in (LINEAR, ENSEMBLE)), None)
    heads = fitter.assemble(kinds, refined=REFINED in winners, tip=tip, decay=decay)
    heads.calibration = calibration.astype(np.float32)
    heads.thresholds = thresholds.astype(np.float32)
    heads.unknown_cutoff = cutoff.cutoff
    heads.unknown_held_out = cutoff.held_out
    heads.unknown_kept = cutoff.kept
    return heads
