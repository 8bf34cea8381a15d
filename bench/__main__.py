"""``python -m bench [NAME ...]``: run every benchmark module here that has a ``main()`` (or the named ones)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> None:
    wanted = sys.argv[1:]
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    for name in wanted or names:
        module = importlib.import_module(f"bench.{name}")
        if hasattr(module, "main"):
            print(f"\n===== bench.{name} =====", flush=True)
            module.main([])


main()
