"""Command line: ``python -m core COMMAND ...``; ``--json`` for machine-readable output.

Exit status 0 on success, 1 on an error (one line on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict

from core.disk import as_storage_error
from core.embedding import DEFAULT_EMBEDDER, describe_embedders
from core.embedding.weights import download_clip_weights
from core.errors import ConceptlabError, ProjectError
from core.evaluate import evaluate_inputs
from core.exchange import export_model_to, import_model, read_model_file
from core.ingestion import IngestReport, ingest
from core.inputs import ReadConfig, VideoConfig, read_inputs, read_texts
from core.learning.heads import HeadConfig
from core.learning.metrics import Evaluation
from core.learning.models import load_model, set_threshold
from core.learning.training import plan_training, train
from core.paths import get_data_home
from core.prediction import predict, search_similar
from core.storage.projects import create_project, delete_project, list_projects, open_project, rename_project


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="conceptlab: teach a concept in seconds.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True)

    project = commands.add_parser("project", help="create, list, rename or delete projects").add_subparsers(dest="action", required=True)
    create = project.add_parser("create", help="create a project")
    create.add_argument("name")
    create.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        help="clip (default), lite, tiny, clip:ARCH:TAG, clip:ARCH:/path/to/checkpoint or clip:ARCH:random",
    )
    create.add_argument("--exclusive", action="store_true", help="concepts are mutually exclusive (one per input)")
    project.add_parser("list", help="list projects")
    delete = project.add_parser("delete", help="delete a project and everything in it")
    delete.add_argument("name")
    rename = project.add_parser("rename", help="rename a project")
    rename.add_argument("name")
    rename.add_argument("new_name")

    def add_read_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--text-column", help="CSV/TSV column holding the text (default: 'text', or the only column)")
        p.add_argument("--fps", type=float, default=VideoConfig.fps, help="video frames sampled per second (default 1)")
        p.add_argument("--max-frames", type=int, default=VideoConfig.max_frames, help="most frames sampled per video")
        p.add_argument("--text", action="append", default=[], metavar="T", help="a text to use as an input (repeatable)")

    ingest_p = commands.add_parser("ingest", help="add images, videos, texts, CSV/TSV or zip archives")
    ingest_p.add_argument("name")
    ingest_p.add_argument("paths", nargs="*")
    labels = ingest_p.add_mutually_exclusive_group()
    labels.add_argument("--concept", help="label every input with this concept")
    labels.add_argument("--labels-from-folders", action="store_true", help="each file's folder name is its concept")
    ingest_p.add_argument("--negative", action="store_true", help="with --concept: label the inputs as negatives")
    ingest_p.add_argument("--label-column", help="CSV/TSV column holding each row's concept")
    add_read_options(ingest_p)

    concepts = commands.add_parser("concepts", help="list concepts with their counts; create, rename or delete one")
    concepts.add_argument("name")
    change = concepts.add_mutually_exclusive_group()
    change.add_argument("--create", metavar="CONCEPT")
    change.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"))
    change.add_argument("--delete", metavar="CONCEPT")

    inputs = commands.add_parser("inputs", help="list stored inputs with their ids and labels")
    inputs.add_argument("name")
    inputs.add_argument("--limit", type=int, default=100)
    inputs.add_argument("--offset", type=int, default=0)

    label = commands.add_parser("label", help="label a stored input positive (or negative) for a concept")
    label.add_argument("name")
    label.add_argument("input_id", help="input id, or the first characters of its sha256")
    label.add_argument("concept")
    what = label.add_mutually_exclusive_group()
    what.add_argument("--negative", action="store_true")
    what.add_argument("--remove", action="store_true", help="remove the label")

    train_p = commands.add_parser("train", help="train a new model version")
    train_p.add_argument("name")
    train_p.add_argument(
        "--no-evaluate",
        action="store_true",
        help="skip cross-validation: default heads, thresholds at 0.5, no quality figures (faster on large projects)",
    )

    predict_p = commands.add_parser("predict", help="predict concepts (one JSON object per input)")
    predict_p.add_argument("name")
    predict_p.add_argument("paths", nargs="*")
    predict_p.add_argument("--version", type=int, help="model version (default: the active one)")
    add_read_options(predict_p)

    evaluate_p = commands.add_parser("evaluate", help="measure a model version on labelled inputs it was not trained on")
    evaluate_p.add_argument("name")
    evaluate_p.add_argument("paths", nargs="*")
    evaluate_p.add_argument("--labels-from-folders", action="store_true", help="each file's folder name is its concept")
    evaluate_p.add_argument("--label-column", help="CSV/TSV column holding each row's concept")
    evaluate_p.add_argument("--version", type=int, help="model version (default: the active one)")
    add_read_options(evaluate_p)

    threshold_p = commands.add_parser("threshold", help="set the probability at which a concept matches")
    threshold_p.add_argument("name")
    threshold_p.add_argument("concept")
    threshold_p.add_argument("value", type=float, help="between 0 and 1")
    threshold_p.add_argument("--version", type=int, help="model version (default: the active one)")

    search = commands.add_parser("search", help="find the stored inputs most similar to a file, a text or a stored input")
    search.add_argument("name")
    search.add_argument("path", nargs="?")
    search.add_argument("--text")
    search.add_argument("--input", help="id of a stored input")
    search.add_argument("-k", type=int, default=10)

    export = commands.add_parser("export", help="write a model version to one file (to share it or keep it)")
    export.add_argument("name")
    export.add_argument("out", help="the model file to write (a .zip)")
    export.add_argument("--version", type=int, help="model version (default: the active one)")
    import_p = commands.add_parser("import", help="add a model file as the newest version of a project (created if missing)")
    import_p.add_argument("name")
    import_p.add_argument("file")

    models = commands.add_parser("models", help="model weights").add_subparsers(dest="action", required=True)
    download = models.add_parser("download", help="download pretrained weights (needs internet)")
    download.add_argument("model", help="clip, or clip:ARCH:TAG")
    download.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    models.add_parser("list", help="the embedders on offer")
    return parser


def _out(args: argparse.Namespace, data, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def _read(args: argparse.Namespace, with_labels: bool = False):
    config = ReadConfig(
        text_column=args.text_column,
        label_column=getattr(args, "label_column", None) if with_labels else None,
        labels_from_folders=getattr(args, "labels_from_folders", False),
    )
    yield from read_inputs(args.paths, config)
    yield from read_texts(args.text)


def _format_evaluation(e: Evaluation) -> list[str]:
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


def _summarise(report: IngestReport) -> str:
    counts = f"{len(report.added)} added, {len(report.already_stored)} already stored, {report.labelled} labels"
    return f"{counts}, {len(report.failed)} failed in {report.seconds:.1f}s"


def run(argv: list[str] | None = None) -> int:
    """Run one command; return the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except ConceptlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        # A full or read-only disk met outside the store (a model version being written): still one line.
        storage = as_storage_error(e, os.path.dirname(e.filename) if isinstance(e.filename, str) else get_data_home())
        if storage is None:
            raise
        print(f"error: {storage}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    video = VideoConfig(fps=args.fps, max_frames=args.max_frames) if hasattr(args, "fps") else VideoConfig()
    if args.command == "project":
        if args.action == "create":
            info = create_project(args.name, args.embedder, args.exclusive).info()
            _out(
                args,
                asdict(info),
                f"created project '{info.name}' with embedder {info.embedder}" + (" (exclusive concepts)" if info.exclusive else ""),
            )
        elif args.action == "list":
            infos = list_projects()
            rows = [
                f"{i.name}\t{i.embedder}\t{'exclusive' if i.exclusive else 'multi-label'}\t"
                f"{i.inputs} inputs\t{i.concepts} concepts\t{i.versions} versions"
                for i in infos
            ]
            _out(
                args, [asdict(i) for i in infos], "\n".join(rows) or "no projects yet: create one with `python -m core project create NAME`"
            )
        elif args.action == "delete":
            delete_project(args.name)
            _out(args, {"deleted": args.name}, f"deleted project '{args.name}'")
        else:
            project = rename_project(args.name, args.new_name)
            _out(args, {"renamed": args.name, "to": project.name}, f"renamed project '{args.name}' to '{project.name}'")
        return 0

    if args.command == "models":
        if args.action == "list":
            specs = describe_embedders()
            _out(args, [{"spec": s, "description": d} for s, d in specs], "\n".join(f"{s}\t{d}" for s, d in specs))
            return 0
        path = download_clip_weights(args.model, progress=_print_download_progress if not args.json else None, timeout_s=args.timeout)
        _out(args, {"path": str(path)}, f"weights saved to {path}")
        return 0

    if args.command == "import":
        model_file = read_model_file(args.file)
        try:
            project = open_project(args.name)
        except ProjectError:
            project = create_project(args.name, model_file.embedder, model_file.exclusive)
        result = import_model(project, model_file, name=args.file)
        made = f"; created {', '.join(result.created)}" if result.created else ""
        data = {"project": project.name, "version": result.version, "concepts": result.concepts, "created": result.created}
        _out(args, data, f"imported {args.file} as version {result.version} of '{project.name}' ({len(result.concepts)} concepts{made})")
        return 0

    project = open_project(args.name)
    if args.command == "export":
        path = export_model_to(project, args.out, args.version)
        _out(args, {"file": str(path), "bytes": path.stat().st_size}, f"exported to {path} ({path.stat().st_size:,} bytes)")
        return 0

    if args.command == "ingest":
        if not args.paths and not args.text:
            raise ConceptlabError("nothing to ingest: give files, folders or --text")
        if args.negative and not args.concept:
            raise ConceptlabError("--negative needs --concept")
        report = ingest(project, _read(args, with_labels=True), concept=args.concept, negative=args.negative, video=video)
        for failure in report.failed:
            print(str(failure), file=sys.stderr)
        data = {
            "added": report.added,
            "already_stored": report.already_stored,
            "labelled": report.labelled,
            "failed": [{"input": f.name, "error": f.reason} for f in report.failed],
            "seconds": round(report.seconds, 3),
        }
        _out(args, data, _summarise(report))
        return 1 if report.failed and not (report.added or report.already_stored) else 0

    if args.command == "concepts":
        store = project.store
        if args.create:
            store.create_concept(args.create)
        elif args.rename:
            store.rename_concept(*args.rename)
        elif args.delete:
            store.delete_concept(args.delete)
        plans = plan_training(project)
        _out(
            args,
            [asdict(p) for p in plans],
            "\n".join(f"{p.concept}\t{p.space}\t+{p.positives} -{p.negatives}\t{p.head}\t{p.hint}" for p in plans) or "no concepts yet",
        )
        return 0

    if args.command == "inputs":
        records = project.store.list_inputs(limit=args.limit, offset=args.offset)
        data = [{"id": r.id, "kind": r.kind, "name": r.name, "sha256": r.sha256, "labels": project.store.labels_of(r.id)} for r in records]
        _out(args, data, "\n".join(f"{d['id']}\t{d['kind']}\t{d['name']}\t{d['labels'] or ''}" for d in data) or "no inputs yet")
        return 0

    if args.command == "label":
        input_id = project.store.resolve_input_id(args.input_id)
        if input_id is None:
            raise ConceptlabError(f"no input '{args.input_id}' in project '{project.name}'")
        concept_id = project.store.ensure_concepts([args.concept])
        value = None if args.remove else (-1 if args.negative else 1)
        project.store.set_labels([input_id], next(iter(concept_id.values())), value)
        word = "removed label" if value is None else ("negative" if value < 0 else "positive")
        _out(args, {"input": input_id, "concept": args.concept, "value": value}, f"input {input_id}: {word} for '{args.concept}'")
        return 0

    if args.command == "train":
        result = train(project, HeadConfig(evaluate=not args.no_evaluate))
        data = {"version": result.version, "seconds": round(result.seconds, 3), "concepts": [asdict(p) for p in result.concepts]}
        lines = [f"version {result.version} trained in {result.seconds:.2f}s"]
        lines += [f"  {p.concept} [{p.space}]: {p.head} (+{p.positives} -{p.negatives})" for p in result.concepts]
        data["evaluations"] = [e.to_dict() for e in result.evaluations]
        data["choices"] = [c.to_dict() for c in result.choices]
        for evaluation in result.evaluations:
            lines += _format_evaluation(evaluation)
        _out(args, data, "\n".join(lines))
        return 0

    if args.command == "evaluate":
        if not args.paths and not args.text:
            raise ConceptlabError("nothing to evaluate: give labelled files or folders")
        held_out = evaluate_inputs(project, _read(args, with_labels=True), version=args.version, video=video)
        for failure in held_out.failed:
            print(str(failure), file=sys.stderr)
        lines = [f"version {held_out.version} on {held_out.inputs} held-out inputs"]
        lines += [f"skipped {name}: {reason}" for name, reason in held_out.skipped]
        for evaluation in held_out.evaluations:
            lines += _format_evaluation(evaluation)
        _out(args, held_out.to_dict(), "\n".join(lines))
        return 0

    if args.command == "threshold":
        version = args.version or load_model(project).version
        try:
            set_threshold(project, version, args.concept, args.value)
        except ValueError as e:
            raise ConceptlabError(str(e)) from e
        _out(
            args,
            {"version": version, "concept": args.concept, "threshold": args.value},
            f"version {version}: '{args.concept}' matches from {args.value:g}",
        )
        return 0

    if args.command == "predict":
        if not args.paths and not args.text:
            raise ConceptlabError("nothing to predict: give files or --text")
        failed = ok = 0
        for result in predict(project, _read(args), version=args.version, video=video):
            if isinstance(result, ConceptlabError):
                failed += 1
                print(json.dumps({"input": result.name, "error": result.reason}, ensure_ascii=False))
            else:
                ok += 1
                print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 1 if failed and not ok else 0

    if args.command == "search":
        if sum(x is not None for x in (args.path, args.text, args.input)) != 1:
            raise ConceptlabError("search needs exactly one of PATH, --text or --input")
        if args.input is not None:
            input_id = project.store.resolve_input_id(args.input)
            if input_id is None:
                raise ConceptlabError(f"no input '{args.input}' in project '{project.name}'")
            query = input_id
        else:
            queries = list(read_texts([args.text]) if args.text is not None else read_inputs([args.path]))
            if len(queries) != 1:
                raise ConceptlabError(f"search takes one file, and {args.path} holds {len(queries)} inputs")
            query = queries[0]
            if isinstance(query, ConceptlabError):
                raise query
        hits = search_similar(project, query, k=args.k)
        data = [{"id": h.record.id, "name": h.record.name, "kind": h.record.kind, "similarity": h.similarity} for h in hits]
        _out(args, data, "\n".join(f"{d['similarity']:.3f}\t{d['id']}\t{d['name']}" for d in data) or "no stored inputs to search")
        return 0
    raise AssertionError(args.command)


def _print_download_progress(done: int, total: int | None) -> None:
    shown = f"{done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else "")
    print(f"\rdownloading: {shown}", end="", file=sys.stderr, flush=True)


def main() -> None:
    sys.exit(run())
