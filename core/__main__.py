"""``python -m core``: the command line."""

from .cli import main

main()
