"""Help never drifts: every "(default X)" in `--help` is the value the parser really applies."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from fruits_cli import main as cli_main

# "(default 300", "(default: 0.95", "default dev;" ...: the first token after "default".
CLAIM = re.compile(r"\bdefault:?\s+([^\s;:)]+)")
# Flags whose default is resolved when the command runs (the parser leaves None): each one acknowledged here.
RESOLVED_AT_RUN_TIME = {
    ("stream", "--master"): "local[*] unless spark-submit launched the interpreter",
    ("fit-pca", "--master"): "the same as stream",
    ("fit-pca", "--lake"): "env FRUITS_LAKE, required",
    ("model export", "--runtime"): "from --out's suffix",
    ("deploy fit-pca", "--target-variance"): "the fit's own default, when --k is not given",
}


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path, parser
        return
    for action in subparsers:
        for name, sub in action.choices.items():
            yield from _leaf_parsers(sub, (*path, name))


def _minimal_argv(parser: argparse.ArgumentParser) -> list[str]:
    argv = []
    for action in parser._actions:
        if action.required and action.option_strings:
            argv += [action.option_strings[0], "1"]
    return argv


def _same(claimed: str, value, action: argparse.Action) -> bool:
    if isinstance(value, Path):
        return Path(claimed.rstrip(".,")) == value
    if isinstance(value, bool):
        return claimed.lower() == str(value).lower()
    if isinstance(value, int | float):
        try:
            return float(claimed.rstrip(".").replace(",", "")) == float(value)
        except ValueError:
            return False
    return claimed.rstrip(".,") == str(value)


def _claims():
    for name in [n for n in os.environ if n.startswith("FRUITS_")]:
        os.environ.pop(name)
    from operations.cost import Assumptions

    assumptions = Assumptions()
    for path, parser in _leaf_parsers(cli_main.build_parser()):
        namespace = parser.parse_args(_minimal_argv(parser))
        for action in parser._actions:
            match = CLAIM.search(action.help or "")
            if match is None or not action.option_strings:
                continue
            claimed = match.group(1)
            # derived at run time: "<lake>/...", "the local sources'", "by --target-variance"
            if claimed.startswith("<") or claimed in ("by", "the", "a"):
                continue
            if (" ".join(path), action.option_strings[0]) in RESOLVED_AT_RUN_TIME:
                continue
            value = getattr(namespace, action.dest)
            if value is None and path == ("cost",):  # `fruits cost` applies operations.cost.Assumptions
                value = getattr(assumptions, action.dest)
            yield " ".join(path), action.option_strings[0], claimed, value, action


def test_every_help_default_is_the_applied_default():
    drift = [
        f"fruits {path} {option}: help says {claimed!r}, the parser applies {value!r}"
        for path, option, claimed, value, action in _claims()
        if not _same(claimed, value, action)
    ]
    assert not drift, "\n".join(drift)


def test_the_check_sees_the_commands():
    checked = {(path, option) for path, option, *_ in _claims()}
    assert ("deploy start", "--stage") in checked
    assert ("deploy stop", "--timeout") in checked
    assert ("cost", "--retention-days") in checked
    assert ("stream", "--trigger") in checked
    assert ("deploy start", "--clean-source") in checked
    assert {("lake maintain", "--retention-days"), ("lake maintain", "--orphan-min-age-hours")} <= checked


@pytest.mark.parametrize("value", [Path("a/b")])
def test_same_compares_paths_as_text(value):
    assert _same("a/b", value, None)
