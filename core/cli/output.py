"""What the command line prints: result lines for people, progress on a terminal only, never into ``--json``."""

from __future__ import annotations

import sys

from core.ingestion import IngestReport
from core.learning.metrics import Evaluation
from core.learning.training import ConceptPlan

# How a person names a stored input kind, singular and plural.
_KIND_WORDS = {"image": ("photo", "photos"), "video": ("video", "videos"), "text": ("text", "texts")}


def count_words(count: int, kind: str) -> str:
    """``"1 photo"``, ``"4 photos"``, ``"2 texts"``."""
    one, many = _KIND_WORDS.get(kind, (kind, kind + "s"))
    return f"{count} {one if count == 1 else many}"


def format_evaluation(e: Evaluation) -> list[str]:
    """A few readable lines: the method, the headline number, then one line per concept."""

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.0f}%"

    if not e.measured:
        return [f"{e.space}: {e.method}" + (f" ({e.note})" if e.note else "")]
    headline = f"accuracy {pct(e.accuracy)}" if e.exclusive else f"macro F1 {pct(e.macro_f1)}"
    lines = [f"{e.space}: {e.method}, {e.inputs} inputs, {headline}" + (f" ({e.note})" if e.note else "")]
    for m in e.concepts:
        auc = "n/a" if m.roc_auc is None else f"{m.roc_auc:.2f}"
        lines.append(
            f"  {m.concept}: precision {pct(m.precision)}, recall {pct(m.recall)}, F1 {pct(m.f1)}, ROC AUC {auc} "
            f"at threshold {m.threshold:.2f} (tp {m.tp}, fp {m.fp}, fn {m.fn}, tn {m.tn})"
        )
    return lines


def summarise_ingest(report: IngestReport) -> str:
    counts = f"{len(report.added)} added, {len(report.already_stored)} already stored, {report.labelled} labels"
    return f"{counts}, {len(report.failed)} failed in {report.seconds:.1f}s"


def describe_concepts(examples: dict[str, dict[str, tuple[int, int]]], plans: list[ConceptPlan]) -> list[dict]:
    """One entry per concept: its examples per kind, and per space it has examples in, the head training gives it."""
    by_concept: dict[str, list[ConceptPlan]] = {}
    for plan in plans:
        by_concept.setdefault(plan.concept, []).append(plan)
    described = []
    for concept, kinds in examples.items():
        concept_plans = by_concept.get(concept, [])
        trained = [p for p in concept_plans if p.positives or p.negatives] or concept_plans[:1]
        described.append(
            {
                "concept": concept,
                "examples": {kind: {"positive": pos, "negative": neg} for kind, (pos, neg) in kinds.items()},
                "heads": {p.space: p.head for p in trained},
                "hint": next((p.hint for p in trained if p.hint), ""),
            }
        )
    return described


def format_concept(entry: dict) -> str:
    """``ants: 4 photos, 1 text; 3 negatives · prototype · add 1 more examples for a linear head``."""
    positives = [count_words(counts["positive"], kind) for kind, counts in entry["examples"].items() if counts["positive"]]
    negatives = sum(counts["negative"] for counts in entry["examples"].values())
    line = f"{entry['concept']}: {', '.join(positives) or 'no examples'}"
    if negatives:
        line += f"; {negatives} negative{'s' if negatives != 1 else ''}"
    heads = entry["heads"]
    if heads:
        line += " · " + (next(iter(heads.values())) if len(heads) == 1 else ", ".join(f"{h} ({s})" for s, h in heads.items()))
    return line + (f" · {entry['hint']}" if entry["hint"] else "")


class TerminalProgress:
    """One rewritten status line on stderr, shown only when stderr is a terminal and the output is not JSON."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._shown = False

    def show(self, message: str) -> None:
        if self.enabled:
            print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)
            self._shown = True

    def close(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
            self._shown = False
