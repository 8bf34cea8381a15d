"""A model version as one ONNX file: a preprocessed photo in, each concept's calibrated probability out.

The graph holds the frozen image model, the normalisation, the space's feature transform and the
chosen heads, each written out in torch with its arrays as constants: linear layers, prototypes,
nearest-neighbour heads over the labelled examples (the same pool of 256 and mean of the best 3),
Tip-Adapter caches, ensembles, zero-shot prompts, then the calibration and the sigmoid (softmax in
an exclusive project). Any program with onnxruntime can run it; the preprocessing and the concept
names are in the file's metadata. ``tests/exchange/test_onnx_export.py`` holds its probabilities to
conceptlab's own within 1e-3.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from core.errors import ModelVersionError
from core.learning.heads import (
    ENSEMBLE,
    LINEAR,
    NEAREST,
    NEAREST_K,
    NEAREST_POOL,
    NEAREST_SCALE,
    NO_HEAD,
    PROTOTYPE,
    PROTOTYPE_SCALE,
    TIP_ADAPTER,
    ZERO_SHOT,
    ZERO_SHOT_SCALE,
    SpaceHeads,
)
from core.learning.models import load_model, thresholds_for
from core.storage.projects import Project

logger = logging.getLogger(__name__)

ONNX_OPSET = 17
# Stands for "no such example" where numpy uses -inf: ONNX runtimes handle a finite sentinel everywhere.
_MISSING = -1e9


def _constant(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    norms = x.norm(dim=1, keepdim=True)
    return x / torch.where(norms > 1e-12, norms, torch.ones_like(norms))


class HeadsGraph(torch.nn.Module):
    """One space's heads as a torch module: unit vectors (n, d) -> probabilities (n, C) of the scored concepts."""

    def __init__(self, heads: SpaceHeads) -> None:
        super().__init__()
        self.kinds = list(heads.kinds)
        self.scored = [j for j, kind in enumerate(self.kinds) if kind != NO_HEAD]
        self.exclusive = bool(heads.exclusive)
        self.power = float(heads.feature_power)
        self.center = _constant(heads.center)
        self.weights, self.bias = _constant(heads.weights), _constant(heads.bias)
        self.memory = _constant(heads.memory)
        self.memory_labels = _constant(heads.memory_labels)
        self.memory_features = _constant(heads.features(heads.memory)) if len(heads.memory) else self.memory
        self.reference = _constant(heads.reference)
        self.zero_shot = _constant(heads.zero_shot)
        self.background = _constant(heads.zero_shot_background)
        self.zero_shot_weight = _constant(heads.zero_shot_weight)
        self.prototypes, self.negative_prototypes = _constant(heads.prototypes), _constant(heads.negative_prototypes)
        self.tip = _constant(heads.tip)
        self.calibration = _constant(heads.calibration)
        self.has_negatives = [bool((heads.memory_labels[:, j] < 0).any()) for j in range(len(self.kinds))]
        self.prototype_has_negatives = [bool(np.abs(heads.negative_prototypes[j]).sum() > 0) for j in range(len(self.kinds))]

    def features(self, q: torch.Tensor) -> torch.Tensor:
        if self.power == 0.5:
            q = torch.sign(q) * torch.sqrt(torch.abs(q))
        elif self.power != 1.0:
            q = torch.sign(q) * torch.abs(q) ** self.power
        q = _unit_rows(q)
        return q if self.center.numel() == 0 else _unit_rows(q - self.center)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        z = self.features(q)
        zero_shot = self._zero_shot(q) if self.zero_shot.numel() else None
        nearest = self._nearest_pool(q) if len(self.memory) else None
        columns = []
        for j in self.scored:
            columns.append(self._logit(j, q, z, zero_shot, nearest))
        logits = torch.stack(columns, dim=1)
        scored = torch.tensor(self.scored)
        logits = logits * self.calibration[scored, 0] + self.calibration[scored, 1]
        return torch.softmax(logits, dim=1) if self.exclusive else torch.sigmoid(logits.clamp(-60, 60))

    def _logit(self, j: int, q, z, zero_shot, nearest) -> torch.Tensor:
        kind = self.kinds[j]
        if kind == LINEAR:
            return z @ self.weights[j] + self.bias[j]
        if kind == PROTOTYPE:
            own = z @ self.prototypes[j]
            if self.exclusive:
                return PROTOTYPE_SCALE * own
            other = z @ self.negative_prototypes[j] if self.prototype_has_negatives[j] else self.reference[j].expand_as(own)
            return PROTOTYPE_SCALE * (own - other)
        if kind == NEAREST:
            knn = self._nearest_logit(j, nearest, len(q))
            if zero_shot is not None:
                w = self.zero_shot_weight[j]
                knn = w * zero_shot[:, j] + (1 - w) * knn
            return knn
        if kind == TIP_ADAPTER:
            base = zero_shot[:, j] if zero_shot is not None else z @ self.weights[j] + self.bias[j]
            return base + self.tip[j, 0] * self._cache_affinity(j, z)
        if kind == ENSEMBLE:
            linear = z @ self.weights[j] + self.bias[j]
            return self.tip[j, 0] * linear + self.tip[j, 1] * self._nearest_logit(j, nearest, len(q))
        if kind == ZERO_SHOT and zero_shot is not None:
            return zero_shot[:, j]
        raise ModelVersionError(f"head kind {kind} cannot be exported")

    def _zero_shot(self, q: torch.Tensor) -> torch.Tensor:
        sims = q @ self.zero_shot.T
        if self.exclusive:
            return ZERO_SHOT_SCALE * sims
        return ZERO_SHOT_SCALE * (sims - (q @ self.background)[:, None])

    def _nearest_pool(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(similarities (n, pool), labels (n, pool, C)) of the closest labelled examples, best first."""
        pool = min(len(self.memory), NEAREST_POOL)
        sims, rows = torch.topk(q @ self.memory.T, pool, dim=1)
        return sims, self.memory_labels[rows]

    def _nearest_logit(self, j: int, nearest, n: int) -> torch.Tensor:
        if nearest is None:
            return torch.zeros(n)
        sims, labels = nearest
        floor = sims[:, -1]  # a concept absent from the pool is farther than everything retrieved
        pos = self._mean_top(torch.where(labels[:, :, j] > 0, sims, torch.full_like(sims, _MISSING)), floor)
        if self.exclusive:
            return NEAREST_SCALE * pos
        if self.has_negatives[j]:
            neg = self._mean_top(torch.where(labels[:, :, j] < 0, sims, torch.full_like(sims, _MISSING)), floor)
        else:
            neg = self.reference[j].expand_as(pos)
        return NEAREST_SCALE * (pos - neg)

    @staticmethod
    def _mean_top(values: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        top = torch.topk(values, min(NEAREST_K, values.shape[1]), dim=1).values
        found = (top > _MISSING / 2).float()
        counts = found.sum(dim=1)
        mean = (top * found).sum(dim=1) / counts.clamp(min=1)
        return torch.where(counts > 0, mean, floor)

    def _cache_affinity(self, j: int, z: torch.Tensor) -> torch.Tensor:
        if len(self.memory) == 0:
            return torch.zeros(len(z))
        labels = self.memory_labels[:, j]
        pos = (labels > 0).float() / (labels > 0).float().sum().clamp(min=1)
        neg = torch.zeros_like(pos) if self.exclusive else (labels < 0).float() / (labels < 0).float().sum().clamp(min=1)
        affinity = torch.exp(-self.tip[j, 1] * (1.0 - z @ self.memory_features.T))
        return affinity @ pos - affinity @ neg


class _InputsToProbabilities(torch.nn.Module):
    """The exported graph: each input kind through its model and its space's heads."""

    def __init__(self, image: torch.nn.Module | None, image_heads, text: torch.nn.Module | None, text_heads, text_inputs: int) -> None:
        super().__init__()
        self.image, self.image_heads, self.text, self.text_heads = image, image_heads, text, text_heads
        self.text_inputs = text_inputs

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs, rest = [], list(inputs)
        if self.image is not None:
            outputs.append(self.image_heads(self.image(rest.pop(0))))
        if self.text is not None:
            outputs.append(self.text_heads(self.text(*rest[: self.text_inputs])))
        return tuple(outputs)


def _trained(heads: SpaceHeads | None) -> bool:
    return heads is not None and any(kind != NO_HEAD for kind in heads.kinds)


def export_onnx(project: Project, out: str | Path, version: int | None = None) -> Path:
    """Write a model version (the active one by default) as one ONNX file, plus its tokenizer file for texts.

    Inputs, as the version has image and text concepts: ``image``, float32 (n, 3, size, size), preprocessed
    as the metadata's ``conceptlab.preprocessing`` says; ``text_ids`` (and ``text_mask`` for lite), int64 (n, length),
    from the tokenizer file written beside the model (``conceptlab.tokenizer``). Outputs: ``image_probabilities``
    and ``text_probabilities``, float32 (n, C), one column per concept of ``conceptlab.image_concepts`` and
    ``conceptlab.text_concepts``.

    Raises:
        ModelVersionError: no such version, or nothing trained in it.
        EmbedderError: the embedder has no exportable model (``tiny``).
    """
    import shutil

    import onnx  # here: only this export needs it
    import onnx.numpy_helper

    model = load_model(project, version)
    embedder = project.embedder()
    image_heads, text_heads = model.spaces.get(embedder.image_space), model.spaces.get(embedder.text_space)
    if not (_trained(image_heads) or _trained(text_heads)):
        raise ModelVersionError(f"model version {model.version} of '{project.name}' has no trained concepts to export")
    path = Path(out)
    metadata = {
        "conceptlab.embedder": project.embedder_spec,
        "conceptlab.exclusive": json.dumps(project.exclusive),
        "conceptlab.source": json.dumps({"project": project.name, "version": model.version}, ensure_ascii=False),
    }
    inputs, names, dynamic, dummies = [], [], {}, []
    image_graph = text_graph = None
    heads_graphs = {}
    for kind, heads, space in (("image", image_heads, embedder.image_space), ("text", text_heads, embedder.text_space)):
        if not _trained(heads):
            continue
        graph = heads_graphs.get(space) or HeadsGraph(heads).eval()
        heads_graphs[space] = graph
        thresholds = thresholds_for(project, model, space)
        metadata[f"conceptlab.{kind}_concepts"] = json.dumps(
            [model.concept_names[int(heads.concept_ids[j])] for j in graph.scored], ensure_ascii=False
        )
        metadata[f"conceptlab.{kind}_thresholds"] = json.dumps([round(float(thresholds[j]), 6) for j in graph.scored])
        names.append(f"{kind}_probabilities")
        dynamic[f"{kind}_probabilities"] = {0: "n"}
    if "conceptlab.image_concepts" in metadata:
        preprocessing = embedder.describe_image_preprocessing()
        image_graph = embedder.build_image_graph()
        size = preprocessing["center_crop"]
        inputs.append("image")
        dynamic["image"] = {0: "n"}
        dummies.append(torch.zeros(1, 3, size, size))
        metadata["conceptlab.preprocessing"] = json.dumps(preprocessing)
    text_inputs, tokenizer_copy = 0, None  # (source, destination) of the tokenizer file written beside the model
    if "conceptlab.text_concepts" in metadata:
        tokenizer = embedder.describe_text_tokenizer()
        text_graph = embedder.build_text_graph()
        variable = "tokenizers" in tokenizer["kind"]  # MiniLM takes any length up to its limit; CLIP exactly 77
        length = 8 if variable else tokenizer["max_length"]
        for name in tokenizer["inputs"]:
            inputs.append(name)
            dynamic[name] = {0: "n", 1: "length"} if variable else {0: "n"}
            dummies.append(torch.ones(1, length, dtype=torch.long))
        text_inputs = len(tokenizer["inputs"])
        beside = path.with_name(f"{path.stem}.{Path(tokenizer['file']).name}")
        tokenizer_copy = (tokenizer["file"], beside)
        metadata["conceptlab.tokenizer"] = json.dumps({**tokenizer, "file": beside.name})
    whole = _InputsToProbabilities(
        image_graph, heads_graphs.get(embedder.image_space), text_graph, heads_graphs.get(embedder.text_space), text_inputs
    ).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    # nn.MultiheadAttention's fused inference kernel (CLIP's text and ViT towers) has no ONNX form: trace the plain one.
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        torch.onnx.export(
            whole,
            tuple(dummies),
            str(path),
            input_names=inputs,
            output_names=names,
            dynamic_axes=dynamic,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
    metadata["conceptlab.inputs"] = json.dumps(inputs)
    described = onnx.load(str(path))
    if len(inputs) > 1:
        # Each input gets a default of its own (an initializer of the same name): a program asking only
        # about photos need not send token ids, and one asking about texts need not send a photo.
        for name, dummy in zip(inputs, dummies, strict=True):
            described.graph.initializer.append(onnx.numpy_helper.from_array(dummy.numpy(), name))
    for key, value in metadata.items():
        entry = described.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(described, str(path))
    if tokenizer_copy is not None:
        shutil.copyfile(*tokenizer_copy)
    logger.info("exported version %d of %s to %s", model.version, project.name, path)
    return path
