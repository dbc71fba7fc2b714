"""Execute a notebook top to bottom with nbclient and write it back with its outputs.

    python notebooks/execute.py notebooks/local_pipeline.ipynb [--out OTHER.ipynb] [--timeout S]

Used by `make notebook` (after `jupytext --sync`) and by the notebook's test. The kernel runs in the
notebook's folder with this process's environment (so FRUITS_NOTEBOOK_* variables reach it); any
cell error stops the run and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

DEFAULT_TIMEOUT_S = 900


def execute(
    path: Path, out: Path | None = None, timeout_s: int = DEFAULT_TIMEOUT_S, cwd: Path | None = None
) -> nbformat.NotebookNode:
    """Run every cell in `cwd` (default: the notebook's folder) and write the result to `out` (default: in
    place); raises nbclient's CellExecutionError on the first failing cell."""
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout_s,
        kernel_name="python3",
        resources={"metadata": {"path": str((cwd or path.resolve().parent).resolve())}},
    )
    client.execute()
    nbformat.write(notebook, out or path)
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--out", type=Path, help="where to write the executed notebook (default: in place)")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_S, help="seconds per cell")
    args = parser.parse_args(argv)
    started = time.monotonic()
    execute(args.notebook, args.out, args.timeout)
    print(f"executed {args.notebook} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
