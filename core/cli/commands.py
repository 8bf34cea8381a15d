"""The commands: each reads its arguments, calls the engine, prints the result and returns the exit status."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

from core.cli.output import TerminalProgress, describe_concepts, format_concept, format_evaluation, summarise_ingest
from core.cli.parser import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL
from core.embedding import describe_embedders
from core.embedding.weights import download_clip_weights
from core.errors import ConceptlabError, ProjectError
from core.evaluate import evaluate_inputs
from core.exchange import export_model_to, import_model, read_model_file
from core.ingestion import ingest, note_missing_folder_labels
from core.inputs import ReadConfig, VideoConfig, read_inputs, read_texts
from core.learning.heads import HeadConfig
from core.learning.models import load_model, set_threshold
from core.learning.training import plan_training, train
from core.prediction import predict, search_similar
from core.storage.projects import create_project, delete_project, list_projects, open_project, rename_project
from core.views.gallery import label_inputs


def _out(args: argparse.Namespace, data, text: str) -> None:
    print(json.dumps(data, ensure_ascii=False) if args.json else text)


def _read(args: argparse.Namespace, with_labels: bool = False):
    config = ReadConfig(
        text_column=args.text_column,
        label_column=getattr(args, "label_column", None) if with_labels else None,
        labels_from_folders=getattr(args, "labels_from_folders", False),
        follow_links=args.follow_links,
        keep_paths=getattr(args, "keep_paths", False),
    )
    yield from read_inputs(args.paths, config)
    yield from read_texts(args.text)


def run_command(args: argparse.Namespace) -> int:
    """Run one parsed command; return its exit status (``parser.EXIT_*``)."""
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
            _out(args, [asdict(i) for i in infos], "\n".join(rows) or "no projects yet: create one with `conceptlab project create NAME`")
        elif args.action == "delete":
            delete_project(args.name)
            _out(args, {"deleted": args.name}, f"deleted project '{args.name}'")
        else:
            project = rename_project(args.name, args.new_name)
            _out(args, {"renamed": args.name, "to": project.name}, f"renamed project '{args.name}' to '{project.name}'")
        return EXIT_OK

    if args.command == "serve":
        return _serve(args)

    if args.command == "studio":
        return _studio(args)

    if args.command == "tokens":
        return _tokens(args)

    if args.command == "users":
        return _users(args)

    if args.command == "members":
        return _members(args)

    if args.command == "share":
        return _share(args)

    if args.command == "audit":
        from core.access import read_log

        entries = read_log(open_project(args.project) if args.project else None, limit=args.limit)
        when = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.at)) for e in entries]
        rows = [f"{at}\t{e.user}\t{e.action}\t{e.project or '-'}\t{e.what}" for at, e in zip(when, entries)]
        _out(args, [asdict(e) for e in entries], "\n".join(rows) or "nothing recorded yet")
        return EXIT_OK

    if args.command == "models":
        if args.action == "list":
            specs = describe_embedders()
            _out(args, [{"spec": s, "description": d} for s, d in specs], "\n".join(f"{s}\t{d}" for s, d in specs))
            return EXIT_OK
        path = download_clip_weights(args.model, progress=_print_download_progress if not args.json else None, timeout_s=args.timeout)
        _out(args, {"path": str(path)}, f"weights saved to {path}")
        return EXIT_OK

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
        return EXIT_OK

    project = open_project(args.name)
    if args.command == "export":
        if args.format == "onnx":
            from core.exchange.onnx_export import export_onnx  # here: it imports torch and onnx

            path = export_onnx(project, args.out, args.version)
        else:
            path = export_model_to(project, args.out, args.version)
        _out(args, {"file": str(path), "bytes": path.stat().st_size}, f"exported to {path} ({path.stat().st_size:,} bytes)")
        return EXIT_OK

    if args.command == "ingest":
        if not args.paths and not args.text:
            raise ConceptlabError("nothing to ingest: give files, folders or --text")
        if args.negative and not args.concept:
            raise ConceptlabError("--negative needs --concept")
        progress = TerminalProgress(enabled=not args.json)
        report = ingest(
            project,
            _read(args, with_labels=True),
            concept=args.concept,
            negative=args.negative,
            video=video,
            progress=lambda so_far, message: progress.show(message),
        )
        progress.close()
        note_missing_folder_labels(report, args.labels_from_folders)
        for failure in report.failed:
            print(str(failure), file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        data = {
            "added": report.added,
            "already_stored": report.already_stored,
            "labelled": report.labelled,
            "failed": [{"input": f.name, "error": f.reason} for f in report.failed],
            "notes": report.notes,
            "seconds": round(report.seconds, 3),
        }
        _out(args, data, summarise_ingest(report))
        return _status(len(report.failed), len(report.added) + len(report.already_stored))

    if args.command == "concepts":
        store = project.store
        if args.create:
            store.create_concept(args.create)
        elif args.rename:
            store.rename_concept(*args.rename)
        elif args.delete:
            store.delete_concept(args.delete)
        described = describe_concepts(store.count_examples(), plan_training(project))
        _out(args, described, "\n".join(format_concept(entry) for entry in described) or "no concepts yet")
        return EXIT_OK

    if args.command == "inputs":
        records = project.store.list_inputs(limit=args.limit or -1, offset=args.offset)
        labels = project.store.labels_of_inputs(r.id for r in records)  # one query, not one per input
        data = [{"id": r.id, "kind": r.kind, "name": r.name, "sha256": r.sha256, "labels": labels[r.id]} for r in records]
        total = sum(project.store.count_inputs().values())
        empty = "no inputs yet" if not total else f"no inputs after the first {min(args.offset, total):,} (of {total:,})"
        _out(args, data, "\n".join(f"{d['id']}\t{d['kind']}\t{d['name']}\t{d['labels'] or ''}" for d in data) or empty)
        if not args.json and data and args.offset + len(data) < total:
            # On stderr: stdout stays one line per input for whoever reads it.
            print(f"… {total - args.offset - len(data):,} more of {total:,}: --limit 0 lists all, --offset N skips N", file=sys.stderr)
        return EXIT_OK

    if args.command == "label":
        input_id = project.store.resolve_input_id(args.input_id)
        if input_id is None:
            raise ConceptlabError(f"no input '{args.input_id}' in project '{project.name}'")
        value = None if args.remove else (-1 if args.negative else 1)
        label_inputs(project, [input_id], args.concept, value)  # one concept per input, where the project says so
        word = "removed label" if value is None else ("negative" if value < 0 else "positive")
        _out(args, {"input": input_id, "concept": args.concept, "value": value}, f"input {input_id}: {word} for '{args.concept}'")
        return EXIT_OK

    if args.command == "train":
        result = train(project, HeadConfig(evaluate=not args.no_evaluate))
        data = {"version": result.version, "seconds": round(result.seconds, 3), "concepts": [asdict(p) for p in result.concepts]}
        lines = [f"version {result.version} trained in {result.seconds:.2f}s"]
        several = len({p.space for p in result.concepts}) > 1
        lines += [f"  {p.concept}{f' [{p.space}]' if several else ''}: {p.head} (+{p.positives} -{p.negatives})" for p in result.concepts]
        data["evaluations"] = [e.to_dict() for e in result.evaluations]
        data["choices"] = [c.to_dict() for c in result.choices]
        for evaluation in result.evaluations:
            lines += format_evaluation(evaluation)
        _out(args, data, "\n".join(lines))
        return EXIT_OK

    if args.command == "evaluate":
        if not args.paths and not args.text:
            raise ConceptlabError("nothing to evaluate: give labelled files or folders")
        held_out = evaluate_inputs(project, _read(args, with_labels=True), version=args.version, video=video)
        for failure in held_out.failed:
            print(str(failure), file=sys.stderr)
        lines = [f"version {held_out.version} on {held_out.inputs} held-out inputs"]
        lines += [f"skipped {name}: {reason}" for name, reason in held_out.skipped]
        for evaluation in held_out.evaluations:
            lines += format_evaluation(evaluation)
        _out(args, held_out.to_dict(), "\n".join(lines))
        return _status(len(held_out.failed), held_out.inputs)

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
        return EXIT_OK

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
        return _status(failed, ok)

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
        return EXIT_OK
    raise AssertionError(args.command)


def _print_download_progress(done: int, total: int | None) -> None:
    shown = f"{done / 1e6:.0f} MB" + (f" of {total / 1e6:.0f} MB" if total else "")
    print(f"\rdownloading: {shown}", end="", file=sys.stderr, flush=True)


def _status(failed: int, done: int) -> int:
    """0 when nothing failed; 3 when some inputs failed and others were used; 1 when every one failed."""
    if not failed:
        return EXIT_OK
    return EXIT_PARTIAL if done else EXIT_ERROR


def _serve(args: argparse.Namespace) -> int:
    from core.serving import ServerConfig, serve  # here: the server stack costs half a second to import

    config = ServerConfig(
        projects=tuple(args.project),
        max_body_bytes=int(args.max_body_mb * 1024**2),
        requests_per_minute=args.requests_per_minute,
    )
    for name in args.project:
        open_project(name)  # an unknown project is an error now, not a 404 later
    print(f"serving on http://{args.host}:{args.port} (API docs at /docs); Ctrl+C stops", file=sys.stderr, flush=True)
    serve(args.host, args.port, config)
    return EXIT_OK


def _studio(args: argparse.Namespace) -> int:
    """Check the address, then become ``streamlit run app.py`` (this process, replaced: Ctrl+C stops it)."""
    from core.network import ACCOUNTS_ENV, OPEN_TO_NETWORK_ENV, describe_studio_reach, refuse_network_without_accounts

    reason = refuse_network_without_accounts(args.address, args.open_to_network, args.accounts)
    if reason:
        raise ConceptlabError(reason)
    if args.accounts:
        from core.access import UserStore

        users = UserStore()
        if not users.list_users():  # the set-up: the first admin, with a password shown this once
            one_time = users.add_user("admin", admin=True)
            print(f"accounts are on and there were none: sign in as 'admin' with the one-time password {one_time}", file=sys.stderr)
    app = Path(__file__).resolve().parents[2] / "app.py"
    if not app.exists():
        raise ConceptlabError(f"the studio's app.py is not at {app}: run the studio from a checkout of conceptlab")
    env = {**os.environ, OPEN_TO_NETWORK_ENV: "1" if args.open_to_network else "0", ACCOUNTS_ENV: "1" if args.accounts else "0"}
    reach = describe_studio_reach(args.address, args.port, args.open_to_network, args.accounts)
    print(f"studio on http://{args.address or '0.0.0.0'}:{args.port}: {reach}", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.address, "--server.port", str(args.port)]
    os.chdir(app.parent)  # where .streamlit/config.toml is read from
    os.execve(sys.executable, command, env)
    return EXIT_OK  # not reached: execve does not return


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    password = getpass.getpass("new password: ")
    if getpass.getpass("the same again: ") != password:
        raise ConceptlabError("the two passwords differ: nothing was changed")
    return password


def _users(args: argparse.Namespace) -> int:
    from core.access import UserStore

    store = UserStore()
    if args.action == "add":
        one_time = store.add_user(args.user, _read_password(args) if args.password_stdin else None, admin=args.admin)
        role = "admin" if args.admin else "user"
        shown = f"\n{one_time}\n(one-time password, shown once: change it at first sign-in)" if one_time else ""
        text = f"added {role} '{args.user}'{shown}"
        _out(args, {"added": args.user, "admin": args.admin, "one_time_password": one_time}, text)
    elif args.action == "passwd":
        store.set_password(args.user, _read_password(args))
        _out(args, {"changed": args.user}, f"changed the password of '{args.user}'")
    elif args.action == "list":
        users = store.list_users()
        rows = [
            f"{u.name}\t{'admin' if u.admin else 'user'}\t{'disabled' if u.disabled else 'enabled'}"
            + ("\tone-time password" if u.must_change else "")
            for u in users
        ]
        _out(args, [asdict(u) for u in users], "\n".join(rows) or "no accounts: add one with `conceptlab users add NAME --admin`")
    else:
        store.disable_user(args.user, disabled=args.action == "disable")
        _out(args, {args.action + "d": args.user}, f"{args.action}d '{args.user}'")
    return EXIT_OK


def _members(args: argparse.Namespace) -> int:
    from core.access import Role, UserStore, read_members, set_member

    project = open_project(args.name)
    if args.action == "list":
        members = read_members(project)
        rows = [f"{name}\t{role.word}" for name, role in sorted(members.items())]
        _out(args, {name: role.word for name, role in members.items()}, "\n".join(rows) or f"'{project.name}' has no members yet")
        return EXIT_OK
    if UserStore().get_user(args.user) is None:
        raise ConceptlabError(f"there is no user named '{args.user}': add one with `conceptlab users add {args.user}`")
    if args.action == "set":
        set_member(project, args.user, Role.parse(args.role))
        _out(args, {"project": project.name, "user": args.user, "role": args.role}, f"{args.user} is now a {args.role} of '{project.name}'")
    else:
        set_member(project, args.user, None)
        _out(args, {"project": project.name, "removed": args.user}, f"{args.user} is no longer a member of '{project.name}'")
    return EXIT_OK


def _share(args: argparse.Namespace) -> int:
    from core.access import ShareStore
    from core.learning.models import resolve_version

    project, shares = open_project(args.name), ShareStore()
    if args.action == "create":
        share, token = shares.make_share(project, resolve_version(project, args.version), args.until, "this computer's user")
        data = {"id": share.id, "version": share.version, "until": args.until.isoformat(), "path": f"/?share={token}"}
        note = f"(shown once: demo link {share.id} to version {share.version} of '{project.name}', until {args.until})"
        _out(args, data, f"/?share={token}\n{note}")
    elif args.action == "list":
        listed = shares.list_shares(project)
        rows = [
            f"{s.id}\tversion {s.version}\tuntil {time.strftime('%Y-%m-%d', time.localtime(s.expires_at - 1))}\t"
            + ("revoked" if s.revoked else "expired" if s.expires_at <= time.time() else "works")
            for s in listed
        ]
        _out(args, [asdict(s) for s in listed], "\n".join(rows) or f"'{project.name}' has no demo links")
    else:
        shares.revoke_share(project, args.share_id)
        _out(args, {"revoked": args.share_id}, f"revoked demo link {args.share_id}")
    return EXIT_OK


def _tokens(args: argparse.Namespace) -> int:
    from core.serving.tokens import TokenStore

    store = TokenStore()
    if args.action == "create":
        if args.project:
            open_project(args.project)
        if args.user:
            from core.access import UserStore

            if UserStore().get_user(args.user) is None:
                raise ConceptlabError(f"there is no user named '{args.user}': add one with `conceptlab users add {args.user}`")
        token = store.create_token(args.token_name, args.project, args.read_only, args.user)
        scope = f"project '{args.project}'" if args.project else "every project"
        data = {"name": args.token_name, "token": token, "project": args.project, "read_only": args.read_only, "user": args.user}
        _out(args, data, f"{token}\n(shown once: token '{args.token_name}' for {scope}{', read-only' if args.read_only else ''})")
    elif args.action == "list":
        records = store.list_tokens()
        rows = [f"{r.name}\t{r.project or 'every project'}\t{'read-only' if r.read_only else 'read-write'}" for r in records]
        _out(args, [{k: v for k, v in asdict(r).items() if k != "sha256"} for r in records], "\n".join(rows) or "no tokens")
    else:
        store.revoke_token(args.token_name)
        _out(args, {"revoked": args.token_name}, f"revoked token '{args.token_name}'")
    return EXIT_OK
