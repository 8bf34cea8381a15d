"""Choose each concept's head by cross-validation, then calibrate it, threshold it and measure it.

For one embedding space: the labelled inputs are split into stratified folds by input (never
by row: inputs with identical embeddings stay together, so a duplicate cannot leak from
training into testing); every candidate head is fitted on each fold's training part and
scores its test part. These out-of-fold logits decide the winner (ROC AUC per independent
concept; per exclusive space, the mean log-likelihood of the true concept after temperature
scaling), fit the calibration, give the F1-maximising thresholds, the "unknown" cut-off and
the ``Evaluation``. The winner is then refitted on
every labelled input. Arrays in, arrays out: ``training.py`` reads and writes the store.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from .calibration import fit_platt, fit_temperature
from .heads import (
    DEFAULT_THRESHOLD,
    LINEAR,
    NEAREST,
    NEAREST_K,
    NO_HEAD,
    PROTOTYPE,
    TIP_ADAPTER,
    ZERO_SHOT,
    HeadConfig,
    ProgressCallback,
    SpaceHeads,
    estimate_reference,
    fit_feature_transform,
    fit_linear,
    fit_prototypes,
    refine_prototypes,
    transform_features,
)
from .metrics import Evaluation, best_threshold, evaluate_probabilities, roc_auc

log = logging.getLogger(__name__)

REFINED = "prototype+unlabelled"
TOO_FEW = "too few examples to measure"


@dataclass(frozen=True)
class SelectionConfig:
    """How cross-validation runs; the caps keep training to seconds on a laptop."""

    max_folds: int = 5
    loo_max_rows: int = 10  # up to this many labelled inputs: leave-one-out
    max_rows: int = 2000  # cross-validate on a stratified sample of at most this many inputs
    unlabelled_sample: int = 2000
    margin: float = 0.005  # a head must beat the default by more than this to replace it
    linear_decays: tuple[float, ...] = (1e-3, 1e-2)  # besides HeadConfig.weight_decay
    tip_alphas: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    tip_betas: tuple[float, ...] = (1.0, 5.5)
    unknown_quantile: float = 0.01
    unknown_slack: float = 0.02
    seed: int = 0


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

    @property
    def has_zero_shot(self) -> bool:
        return self.zero_shot.size > 0


@dataclass(frozen=True)
class HeadChoice:
    """Which head a concept got, and the cross-validated score of every kind that competed."""

    concept: str
    head: str
    candidate: str
    metric: str
    scores: dict[str, float | None]
    margin: float | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SpaceFit:
    """The result for one space: heads to save, how they did, why each was chosen."""

    heads: SpaceHeads
    evaluation: Evaluation
    choices: list[HeadChoice]
    oof_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    oof_probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    oof_labels: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int8))


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


def _weight_decay(candidate: str, config: HeadConfig) -> float:
    return float(candidate.split("wd=")[1].rstrip(")")) if "wd=" in candidate else config.weight_decay


def _kind(candidate: str) -> str:
    return PROTOTYPE if candidate == REFINED else candidate.split("(")[0]


def make_folds(groups: np.ndarray, strata: np.ndarray, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over groups: rows of one group always land in the same fold.

    Args:
        groups: (n,) group key per row (an input id); strata: (n,) class per row.
        k: folds wanted (``k >= number of groups`` gives leave-one-group-out).

    Returns:
        [(train rows, test rows)] for each fold with a non-empty test part.
    """
    groups, strata = np.asarray(groups), np.asarray(strata)
    if groups.shape != strata.shape or groups.ndim != 1:
        raise ValueError("groups and strata must be 1-d and of equal length")
    if k < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    unique, first = np.unique(groups, return_index=True)
    rng = np.random.default_rng(seed)
    fold_of_group: dict = {}
    offset = 0
    for stratum in np.unique(strata[first]):
        members = unique[strata[first] == stratum]
        for i, g in enumerate(members[rng.permutation(len(members))]):
            fold_of_group[g] = (offset + i) % k
        offset += len(members)  # the next stratum starts where this one stopped: folds stay even
    fold = np.array([fold_of_group[g] for g in groups])
    rows = np.arange(len(groups))
    return [(rows[fold != f], rows[fold == f]) for f in range(k) if (fold == f).any()]


def group_rows(ids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A group key per row: rows sharing an input id or an identical embedding share a group."""
    parent = list(range(len(ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    seen: dict = {}
    for i, (input_id, vector) in enumerate(zip(ids, vectors)):
        for key in (("id", int(input_id)), ("vector", np.ascontiguousarray(vector, np.float32).tobytes())):
            if key in seen:
                parent[find(i)] = find(seen[key])
            else:
                seen[key] = i
    return np.array([find(i) for i in range(len(ids))])


def _strata(labels: np.ndarray, exclusive: bool) -> np.ndarray:
    positive = labels > 0
    return np.where(positive.any(axis=1), np.argmax(positive, axis=1), labels.shape[1])


def _plan_folds(data: SpaceData, rows: np.ndarray, config: SelectionConfig) -> tuple[str, int] | None:
    labels = data.labels[rows]
    pos, neg = (labels > 0).sum(axis=0), (labels < 0).sum(axis=0)
    measurable = (pos >= 2) & ((neg >= 1) | data.exclusive)
    if not measurable.any() or len(rows) < 3:
        return None
    if len(rows) <= config.loo_max_rows:
        return "leave-one-out", len(rows)
    k = int(min(config.max_folds, max(2, pos[measurable].min())))
    return f"{k}-fold cross-validation", k


class _Fitter:
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
        decays = {_weight_decay(x, head_config) for x in candidates if _kind(x) == LINEAR}
        if any(_kind(x) == TIP_ADAPTER for x in candidates) and not data.has_zero_shot:
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
        kind = _kind(candidate)
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


def _candidates(data: SpaceData, config: SelectionConfig) -> list[str]:
    names = [NEAREST, PROTOTYPE, LINEAR, *(f"{LINEAR}(wd={wd:g})" for wd in config.linear_decays)]
    if data.exclusive and len(data.unlabelled):
        names.insert(2, REFINED)
    if data.has_zero_shot:
        names.insert(0, ZERO_SHOT)
    names += [f"{TIP_ADAPTER}(alpha={a:g},beta={b:g})" for b in config.tip_betas for a in config.tip_alphas]
    return names


def fit_space(
    data: SpaceData,
    head_config: HeadConfig = HeadConfig(),
    config: SelectionConfig = SelectionConfig(),
    progress: ProgressCallback | None = None,
) -> SpaceFit:
    """Cross-validate the candidate heads of one space, pick, calibrate and refit them on all rows."""
    report = progress or (lambda fraction, message: None)
    everything = np.concatenate([data.vectors, data.unlabelled]) if len(data.unlabelled) else data.vectors
    center, power = fit_feature_transform(everything)
    rows = _cv_rows(data, config)
    plan = _plan_folds(data, rows, config)
    candidates = _candidates(data, config)
    if plan is None:
        return _fit_unmeasured(data, head_config, center, power)
    method, k = plan
    labels = data.labels[rows]
    folds = make_folds(group_rows(data.ids[rows], data.vectors[rows]), _strata(labels, data.exclusive), k, config.seed)
    n, c = labels.shape
    oof = {name: np.full((n, c), np.nan) for name in candidates}
    nearest = np.full(n, np.nan)
    for f, (train, test) in enumerate(folds):
        report(f / len(folds), f"cross-validation: fold {f + 1} of {len(folds)}")
        train_rows, test_rows = rows[train], rows[test]
        # The centre is refitted without the held-out inputs: they must not shape the features either.
        held_out = data.vectors[test_rows]
        fold_center, _ = fit_feature_transform(np.concatenate([data.vectors[train_rows], data.unlabelled]))
        fitter = _Fitter(data, train_rows, candidates, head_config, fold_center, power)
        queries = held_out
        for name in candidates:
            if _kind(name) != TIP_ADAPTER:
                heads = fitter.assemble(fitter.kinds_for(name), refined=name == REFINED, decay=_weight_decay(name, head_config))
                oof[name][test] = heads.logits(queries)
        base, caches, unit = fitter.tip_parts(queries, config.tip_betas)
        for beta in config.tip_betas:
            for alpha in config.tip_alphas:
                oof[f"{TIP_ADAPTER}(alpha={alpha:g},beta={beta:g})"][test] = base + alpha * unit * caches[beta]
        nearest[test] = (held_out @ data.vectors[train_rows].T).max(axis=1)
    choices, chosen = _choose(data, labels, oof, candidates, config)
    calibration, probabilities = _calibrate(data, labels, chosen)
    thresholds = np.full(c, DEFAULT_THRESHOLD, np.float32)
    for j in range(c):
        keep = (labels[:, j] != 0) & ~np.isnan(probabilities[:, j])
        # With a single positive, that one held-out input would set the threshold alone: keep 0.5.
        if (labels[keep, j] > 0).sum() >= 2 and (labels[keep, j] < 0).any():
            thresholds[j] = best_threshold(labels[keep, j] > 0, probabilities[keep, j])
    cutoff = _unknown_cutoff(nearest, config)
    note = "" if len(rows) == len(data.ids) else f"cross-validated on a sample of {len(rows)} of {len(data.ids)} labelled inputs"
    evaluation = evaluate_probabilities(
        data.space, data.names, labels, probabilities, thresholds, data.exclusive, method, len(folds), unknown=nearest < cutoff, note=note
    )
    report(1.0, "fitting the chosen heads on every labelled input")
    heads = _refit(data, head_config, center, power, choices, calibration, thresholds, cutoff)
    return SpaceFit(heads, evaluation, choices, data.ids[rows], probabilities, labels)


def _cv_rows(data: SpaceData, config: SelectionConfig) -> np.ndarray:
    n = len(data.ids)
    if n <= config.max_rows:
        return np.arange(n)
    # A stratified sample: every concept keeps its share of the rows.
    strata = _strata(data.labels, data.exclusive)
    rng = np.random.default_rng(config.seed)
    keep = [
        rng.permutation(np.flatnonzero(strata == s))[: max(2, round(config.max_rows * (strata == s).mean()))] for s in np.unique(strata)
    ]
    return np.sort(np.concatenate(keep))


def _score_candidate(logits: np.ndarray, labels: np.ndarray, column: int | None, exclusive: bool) -> float | None:
    if exclusive:
        single = (labels > 0).sum(axis=1) == 1
        if not single.any():
            return None
        # Mean log-likelihood after temperature scaling: a proper score, far less noisy than
        # accuracy on a handful of held-out inputs (and it is what calibration will optimise).
        truth = np.argmax(labels[single] > 0, axis=1)
        z = np.nan_to_num(logits[single], nan=-1e3)
        t = fit_temperature(z, truth)
        scaled = z / t - (z / t).max(axis=1, keepdims=True)
        return float((scaled[np.arange(len(z)), truth] - np.log(np.exp(scaled).sum(axis=1))).mean())
    rows = labels[:, column] != 0
    if np.isnan(logits[rows, column]).all():
        return None
    return roc_auc(labels[rows, column] > 0, np.nan_to_num(logits[rows, column], nan=-1e9))


def _choose(data: SpaceData, labels, oof, candidates, config) -> tuple[list[HeadChoice], dict[int, str]]:
    """Winner per concept (independent) or per space (exclusive); the default wins ties."""
    c = labels.shape[1]
    trained = (labels > 0).any(axis=0)
    choices, chosen = [], {}
    groups = [list(np.flatnonzero(trained))] if data.exclusive else [[j] for j in np.flatnonzero(trained)]
    for columns in groups:
        default = data.defaults[columns[0]]
        scores = {name: _score_candidate(oof[name], labels, columns[0], data.exclusive) for name in candidates}
        valid = {name: s for name, s in scores.items() if s is not None and not np.isnan(s)}
        if not valid:
            winner = _default_candidate(default, data)
        else:
            order = sorted(valid, key=lambda name: (_kind(name) != default, candidates.index(name)))
            winner = order[0]
            for name in order[1:]:
                if valid[name] > valid[winner] + config.margin:
                    winner = name
        by_kind: dict[str, float | None] = {}
        for name, value in scores.items():
            kind = REFINED if name == REFINED else _kind(name)
            if value is not None and (by_kind.get(kind) is None or value > by_kind[kind]):
                by_kind[kind] = round(float(value), 4)
            by_kind.setdefault(kind, None)
        others = [v for name, v in valid.items() if _kind(name) != _kind(winner)]
        margin = round(float(valid[winner] - max(others)), 4) if winner in valid and others else None
        metric = "log-likelihood" if data.exclusive else "ROC AUC"
        for j in columns:
            chosen[j] = winner
            choices.append(HeadChoice(data.names[j], _kind(winner), winner, metric, by_kind, margin))
    for j in range(c):
        if j not in chosen:
            choices.append(HeadChoice(data.names[j], data.defaults[j], data.defaults[j], "", {}, None))
    return choices, {j: (chosen[j], oof[chosen[j]]) for j in chosen if chosen[j] in oof}


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


def _unknown_cutoff(nearest: np.ndarray, config: SelectionConfig) -> float:
    """Less similar to every labelled example than almost all labelled inputs are to the others."""
    values = nearest[np.isfinite(nearest)]
    if len(values) == 0:
        return float("-inf")
    level = values.min() if len(values) < 100 else np.quantile(values, config.unknown_quantile)
    return float(level - config.unknown_slack)


def _default_candidate(default: str, data: SpaceData) -> str:
    if default == TIP_ADAPTER:
        return f"{TIP_ADAPTER}(alpha=1,beta=5.5)"  # Tip-Adapter's own defaults
    if default == PROTOTYPE and data.exclusive and len(data.unlabelled):
        return REFINED
    return default


def _fit_unmeasured(data: SpaceData, head_config: HeadConfig, center, power) -> SpaceFit:
    """Default heads, identity calibration, threshold 0.5: nothing can be measured yet."""
    c = len(data.names)
    choices = [HeadChoice(name, d, _default_candidate(d, data), "", {}, None) for name, d in zip(data.names, data.defaults)]
    cutoff = float("-inf")
    if len(data.ids) >= 2:
        sims = data.vectors @ data.vectors.T
        np.fill_diagonal(sims, -np.inf)
        cutoff = _unknown_cutoff(sims.max(axis=1), SelectionConfig())
    calibration = np.tile(np.array([1.0, 0.0], np.float32), (c, 1))
    heads = _refit(data, head_config, center, power, choices, calibration, np.full(c, DEFAULT_THRESHOLD, np.float32), cutoff)
    choices = [HeadChoice(ch.concept, kind, ch.candidate, "", {}, None) for ch, kind in zip(choices, heads.kinds)]
    note = "label at least 2 examples of a concept (and some negatives or another concept) to measure it"
    return SpaceFit(heads, Evaluation(data.space, TOO_FEW, inputs=len(data.ids), exclusive=data.exclusive, note=note), choices)


def _refit(data, head_config, center, power, choices, calibration, thresholds, cutoff) -> SpaceHeads:
    by_name = {ch.concept: ch for ch in choices}
    winners = [by_name[name].candidate for name in data.names]
    fitter = _Fitter(data, np.arange(len(data.ids)), winners, head_config, center, power)
    trained = [j for j in range(len(winners)) if fitter.trained[j] and data.defaults[j] not in (ZERO_SHOT, NO_HEAD)]
    # Concepts without examples follow the kind of the trained ones (exclusive: one softmax) or zero-shot.
    others = fitter.kinds_for(winners[trained[0]] if trained and data.exclusive else ZERO_SHOT)
    kinds = [_kind(winners[j]) if j in trained else others[j] for j in range(len(winners))]
    tip = np.zeros((len(winners), 2), np.float32)
    base_unit = None
    for j, winner in enumerate(winners):
        if kinds[j] == TIP_ADAPTER and "(" in winner:
            if base_unit is None:
                base_unit = fitter.tip_parts(data.vectors[:1], (1.0,))[2]
            alpha, beta = (float(part.split("=")[1]) for part in winner[winner.index("(") + 1 : -1].split(","))
            tip[j] = (alpha * base_unit[j], beta)
    decay = next((_weight_decay(w, head_config) for w in winners if _kind(w) == LINEAR), None)
    heads = fitter.assemble(kinds, refined=REFINED in winners, tip=tip, decay=decay)
    heads.calibration = calibration.astype(np.float32)
    heads.thresholds = thresholds.astype(np.float32)
    heads.unknown_cutoff = cutoff
    return heads
