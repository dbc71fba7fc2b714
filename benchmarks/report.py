"""How a measuring script hands back its figures: printed as JSON, and written to the docs/data file the
docs quote when `--json-out` names it (the same text, so what the terminal showed is what the docs hold)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_json_out_argument(parser: argparse.ArgumentParser, docs_file: str) -> None:
    parser.add_argument("--json-out", type=Path, help=f"also write the result here ({docs_file})")


def report(result: dict, json_out: Path | None) -> None:
    """Print `result` as indented, sorted JSON; with `json_out`, write the same text there too."""
    text = json.dumps(result, indent=2, sort_keys=True)
    if json_out:
        json_out.write_text(text + "\n")
    print(text)
