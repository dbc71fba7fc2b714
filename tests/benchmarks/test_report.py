"""The measuring scripts' one report writer (benchmarks/report.py): the file holds what was printed."""

from __future__ import annotations

import argparse
import json

from benchmarks.report import add_json_out_argument, report


def test_the_file_holds_exactly_the_printed_json(tmp_path, capsys):
    # GIVEN a script's parser and figures WHEN it reports them with --json-out
    parser = argparse.ArgumentParser()
    add_json_out_argument(parser, "docs/data/figures.json")
    args = parser.parse_args(["--json-out", str(tmp_path / "figures.json")])
    report({"ratio": 0.97, "cpus": 2}, args.json_out)
    # THEN the file is the printed text, sorted and indented, newline-terminated
    printed = capsys.readouterr().out
    assert (tmp_path / "figures.json").read_text() == printed
    assert printed == json.dumps({"cpus": 2, "ratio": 0.97}, indent=2) + "\n"


def test_without_json_out_it_only_prints(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report({"cpus": 2}, None)
    assert json.loads(capsys.readouterr().out) == {"cpus": 2}
    assert list(tmp_path.iterdir()) == []
