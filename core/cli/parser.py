"""The command line's grammar: ``conceptlab [--json] [-v] COMMAND ...``, global options before or after the command."""

from __future__ import annotations

import argparse
import datetime as dt

from core.embedding.base import DEFAULT_EMBEDDER
from core.inputs.video_plan import VideoConfig
from core.network import LOOPBACK, OPEN_TO_NETWORK_FLAG

# Exit statuses a script can rely on (also in --help and the README).
EXIT_OK = 0  # everything asked was done
EXIT_ERROR = 1  # an error: nothing was done
EXIT_USAGE = 2  # bad usage (argparse's own status)
EXIT_PARTIAL = 3  # partly done: some inputs could not be used, the rest were stored, predicted or evaluated

EPILOG = """exit status:
  0  done
  1  error: nothing was done (one line on stderr)
  2  bad usage
  3  partly done: some inputs could not be used (each named on stderr, or under "failed" with --json);
     the rest were stored, predicted or evaluated"""


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    """--json and -v, for the top parser (with defaults) and every command (without, so they do not reset them)."""
    options = argparse.ArgumentParser(add_help=False)
    default = False if defaults else argparse.SUPPRESS
    options.add_argument("--json", action="store_true", default=default, help="print JSON instead of text")
    options.add_argument("-v", "--verbose", action="store_true", default=default, help="log what the engine does")
    return options


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser(version: str) -> argparse.ArgumentParser:
    """The parser of every command; ``--json`` and ``-v`` are accepted anywhere on the line."""
    common = _global_options(defaults=False)
    parser = argparse.ArgumentParser(
        prog="conceptlab",
        description="conceptlab: teach a concept in seconds.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"conceptlab {version}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(parent, name: str, help: str) -> argparse.ArgumentParser:
        return parent.add_parser(
            name, help=help, description=help, parents=[common], epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )

    project = command(commands, "project", "create, list, rename or delete projects").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = command(project, "create", "create a project")
    create.add_argument("name")
    create.add_argument(
        "--embedder",
        default=DEFAULT_EMBEDDER,
        help="clip (default), lite, tiny, clip:ARCH:TAG, clip:ARCH:/path/to/checkpoint or clip:ARCH:random",
    )
    create.add_argument("--exclusive", action="store_true", help="concepts are mutually exclusive (one per input)")
    command(project, "list", "list projects")
    delete = command(project, "delete", "delete a project and everything in it")
    delete.add_argument("name")
    rename = command(project, "rename", "rename a project")
    rename.add_argument("name")
    rename.add_argument("new_name")

    def add_read_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--text-column", help="CSV/TSV column holding the text (default: 'text', or the only column)")
        p.add_argument("--fps", type=float, default=VideoConfig.fps, help="video frames sampled per second (default 1)")
        p.add_argument("--max-frames", type=int, default=VideoConfig.max_frames, help="most frames sampled per video")
        p.add_argument("--text", action="append", default=[], metavar="T", help="a text to use as an input (repeatable)")
        p.add_argument("--follow-links", action="store_true", help="read files that links in a folder point to outside it")

    ingest = command(commands, "ingest", "add images, videos, texts, CSV/TSV or zip archives")
    ingest.add_argument("name")
    ingest.add_argument("paths", nargs="*")
    labels = ingest.add_mutually_exclusive_group()
    labels.add_argument("--concept", help="label every input with this concept")
    labels.add_argument("--labels-from-folders", action="store_true", help="each file's folder name is its concept")
    ingest.add_argument("--negative", action="store_true", help="with --concept: label the inputs as negatives")
    ingest.add_argument("--label-column", help="CSV/TSV column holding each row's concept")
    ingest.add_argument(
        "--keep-paths",
        action="store_true",
        help="store each input under its path as given; by default names start at the folder or file given (photos/cats/a.jpg)",
    )
    add_read_options(ingest)

    concepts = command(commands, "concepts", "list concepts with their examples; create, rename or delete one")
    concepts.add_argument("name")
    change = concepts.add_mutually_exclusive_group()
    change.add_argument("--create", metavar="CONCEPT")
    change.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"))
    change.add_argument("--delete", metavar="CONCEPT")

    inputs = command(commands, "inputs", "list stored inputs with their ids and labels")
    inputs.add_argument("name")
    inputs.add_argument("--limit", type=_count, default=100, help="most inputs to list (default 100; 0 lists all)")
    inputs.add_argument("--offset", type=_count, default=0, help="inputs to skip first")

    label = command(commands, "label", "label a stored input positive (or negative) for a concept")
    label.add_argument("name")
    label.add_argument("input_id", help="input id, or the first characters of its sha256")
    label.add_argument("concept")
    what = label.add_mutually_exclusive_group()
    what.add_argument("--negative", action="store_true")
    what.add_argument("--remove", action="store_true", help="remove the label")

    train = command(commands, "train", "train a new model version")
    train.add_argument("name")
    train.add_argument(
        "--no-evaluate",
        action="store_true",
        help="skip cross-validation: default heads, thresholds at 0.5, no quality figures (faster on large projects)",
    )

    predict = command(commands, "predict", "predict concepts (one JSON object per input)")
    predict.add_argument("name")
    predict.add_argument("paths", nargs="*")
    predict.add_argument("--version", type=int, help="model version (default: the active one)")
    add_read_options(predict)

    evaluate = command(commands, "evaluate", "measure a model version on labelled inputs it was not trained on")
    evaluate.add_argument("name")
    evaluate.add_argument("paths", nargs="*")
    evaluate.add_argument("--labels-from-folders", action="store_true", help="each file's folder name is its concept")
    evaluate.add_argument("--label-column", help="CSV/TSV column holding each row's concept")
    evaluate.add_argument("--version", type=int, help="model version (default: the active one)")
    add_read_options(evaluate)

    threshold = command(commands, "threshold", "set the probability at which a concept matches")
    threshold.add_argument("name")
    threshold.add_argument("concept")
    threshold.add_argument("value", type=float, help="between 0 and 1")
    threshold.add_argument("--version", type=int, help="model version (default: the active one)")

    search = command(commands, "search", "find the stored inputs most similar to a file, a text or a stored input")
    search.add_argument("name")
    search.add_argument("path", nargs="?")
    search.add_argument("--text")
    search.add_argument("--input", help="id of a stored input")
    search.add_argument("-k", type=int, default=10)

    export = command(commands, "export", "write a model version to one file (to share it or keep it)")
    export.add_argument("name")
    export.add_argument("out", help="the model file to write (a .zip, or a .onnx with --format onnx)")
    export.add_argument("--version", type=int, help="model version (default: the active one)")
    export.add_argument(
        "--format",
        choices=("conceptlab", "onnx"),
        default="conceptlab",
        help="conceptlab: the model file other conceptlab installs import (default); onnx: photo in, probabilities out, for any program",
    )
    imported = command(commands, "import", "add a model file as the newest version of a project (created if missing)")
    imported.add_argument("name")
    imported.add_argument("file")

    studio = command(commands, "studio", "start the studio (the browser app) on this computer; `make run` calls this")
    studio.add_argument("--address", default=LOOPBACK, help="address to listen on (default 127.0.0.1: this computer only)")
    studio.add_argument("--port", type=int, default=8501)
    studio.add_argument("--accounts", action="store_true", help="people sign in (local accounts: `conceptlab users`) and their roles apply")
    studio.add_argument(
        OPEN_TO_NETWORK_FLAG,
        dest="open_to_network",
        action="store_true",
        help="serve a network address although the studio has no accounts: anyone who reaches it can delete every project",
    )

    serve = command(commands, "serve", "serve trained models over HTTP (API docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--project", action="append", default=[], metavar="NAME", help="serve only this project (repeatable)")
    serve.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body accepted (default 64 MB)")
    serve.add_argument("--requests-per-minute", type=int, default=600, help="per token (default 600)")

    users = command(commands, "users", "local accounts: user names and passwords (argon2id hashes)").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    user_add = command(users, "add", "add an account; without --password-stdin a one-time password is made and shown once")
    user_add.add_argument("user", metavar="NAME")
    user_add.add_argument("--admin", action="store_true", help="may create projects and manage users, and do everything in every project")
    user_add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_passwd = command(users, "passwd", "set a new password (asked twice, or read from standard input)")
    user_passwd.add_argument("user", metavar="NAME")
    user_passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    command(users, "list", "the accounts (never their passwords)")
    for verb, what in (("disable", "stop an account from signing in"), ("enable", "let a disabled account sign in again")):
        command(users, verb, what).add_argument("user", metavar="NAME")

    members = command(commands, "members", "who may do what in a project: viewer, labeller, trainer or owner").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    command(members, "list", "a project's members and their roles").add_argument("name", metavar="PROJECT")
    member_set = command(members, "set", "give a user a role in a project")
    member_set.add_argument("name", metavar="PROJECT")
    member_set.add_argument("user", metavar="USER")
    member_set.add_argument("role", choices=("viewer", "labeller", "trainer", "owner"))
    member_remove = command(members, "remove", "take a user's role in a project away")
    member_remove.add_argument("name", metavar="PROJECT")
    member_remove.add_argument("user", metavar="USER")

    share = command(commands, "share", "demo links: a read-only Try page of one model version").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    share_create = command(share, "create", "make a demo link (shown once), working through the date given")
    share_create.add_argument("name", metavar="PROJECT")
    share_create.add_argument("--until", required=True, metavar="YYYY-MM-DD", type=_date, help="the last day the link works")
    share_create.add_argument("--version", type=int, help="the version it shows (default: the one in use)")
    command(share, "list", "a project's demo links").add_argument("name", metavar="PROJECT")
    share_revoke = command(share, "revoke", "stop a demo link for good")
    share_revoke.add_argument("name", metavar="PROJECT")
    share_revoke.add_argument("share_id", metavar="ID")

    audit = command(commands, "audit", "who deleted, removed, imported or changed roles, and failed sign-ins: newest first")
    audit.add_argument("--project", metavar="NAME", help="only this project's entries")
    audit.add_argument("--limit", type=int, default=50)

    tokens = command(commands, "tokens", "API tokens for `conceptlab serve`").add_subparsers(dest="action", required=True, metavar="ACTION")
    token_create = command(tokens, "create", "make a token (shown once) for all projects or one")
    token_create.add_argument("token_name", metavar="NAME")
    token_create.add_argument("--project", help="the token may use only this project")
    token_create.add_argument("--read-only", action="store_true", help="the token may predict and search only")
    token_create.add_argument("--user", help="the account the token acts as, with that user's roles (see `conceptlab members`)")
    command(tokens, "list", "the tokens (never the secrets)")
    token_revoke = command(tokens, "revoke", "forget a token for good")
    token_revoke.add_argument("token_name", metavar="NAME")

    models = command(commands, "models", "model weights").add_subparsers(dest="action", required=True, metavar="ACTION")
    download = command(models, "download", "download pretrained weights (needs internet)")
    download.add_argument("model", help="clip, or clip:ARCH:TAG")
    download.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    command(models, "list", "the embedders on offer")
    return parser


def _count(text: str) -> int:
    """A whole number >= 0, for argparse (which words the refusal)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value
