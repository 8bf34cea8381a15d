"""The ``conceptlab`` command (also ``python -m core``): ``parser`` is its grammar and exit statuses,
``commands`` runs each command on the engine, ``output`` words the results.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

from core.cli.commands import run_command
from core.cli.parser import EXIT_ERROR, EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, build_parser
from core.disk import as_storage_error
from core.errors import ConceptlabError
from core.paths import get_data_home

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_PARTIAL", "EXIT_USAGE", "main", "run"]


def run(argv: list[str] | None = None) -> int:
    """Run one command line (``sys.argv[1:]`` by default); return the exit status."""
    from core import __version__

    args = build_parser(__version__).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        # Third-party libraries' warnings are not the person's to act on; -v shows them with the engine's log.
        warnings.filterwarnings("ignore")
    try:
        return run_command(args)
    except ConceptlabError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        # A full or read-only disk met outside the store (a model version being written): still one line.
        storage = as_storage_error(e, os.path.dirname(e.filename) if isinstance(e.filename, str) else get_data_home())
        if storage is None:
            raise
        print(f"error: {storage}", file=sys.stderr)
        return EXIT_ERROR


def main() -> None:
    """The console script's entry point."""
    try:
        status = run()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`conceptlab inputs NAME | head`): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = EXIT_ERROR
    sys.exit(status)
