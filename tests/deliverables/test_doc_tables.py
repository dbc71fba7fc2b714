"""Tables in docs/*.md agree with what they describe: the stream's flags, the ingest stack, the job zip.

Each test names the source of truth (the parser, template.yaml, operations/job_package.py) and the
page that quotes it: when a default, a parameter or an output changes, the page must follow.
"""

from __future__ import annotations

import argparse
import os
import re

import pytest

from operations.job_package import PACKAGES
from streaming_job.config import add_stream_arguments
from tests.infra.cfn_template import INGEST_TEMPLATE, load_template


def markdown_rows(text: str, header: str) -> list[list[str]]:
    """The body rows of the table whose header line starts with `header`, as stripped cells."""
    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def code_names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.fixture(scope="module")
def operations_md(repo_root) -> str:
    return (repo_root / "docs" / "operations.md").read_text()


def test_the_stream_flag_defaults_in_configuration_md_are_the_parsers(repo_root, monkeypatch):
    # GIVEN the parser's defaults with no FRUITS_* variable set
    for name in [name for name in os.environ if name.startswith("FRUITS_")]:
        monkeypatch.delenv(name)
    parser = argparse.ArgumentParser()
    add_stream_arguments(parser)
    defaults = {option: action.default for action in parser._actions for option in action.option_strings}
    # WHEN configuration.md's stream table is read
    text = (repo_root / "docs" / "configuration.md").read_text()
    rows = markdown_rows(text, "| flag | environment | default |")
    checked = 0
    for flag_cell, _, default_cell in rows:
        flag = code_names(flag_cell)[0]
        quoted = code_names(default_cell)
        if flag not in defaults or not quoted or not re.fullmatch(r"-?\d+(\.\d+)?", quoted[0]):
            continue
        # THEN every numeric default it quotes is the parser's
        assert float(quoted[0]) == float(defaults[flag]), flag
        checked += 1
    assert checked >= 5 and "--trigger" in {code_names(row[0])[0] for row in rows}


def test_the_ingest_stack_parameter_table_is_the_templates(operations_md):
    # GIVEN template.yaml's parameters and their defaults
    parameters = load_template(INGEST_TEMPLATE)["Parameters"]
    rows = markdown_rows(operations_md, "| Parameter | Default | Meaning |")
    documented = {code_names(row[0])[0]: row[1] for row in rows}
    # THEN docs/operations.md has one row per parameter, with the template's default
    assert sorted(documented) == sorted(parameters)
    for name, default_cell in documented.items():
        default = str(parameters[name].get("Default", ""))
        shown = (code_names(default_cell) or [default_cell.split(" ")[0]])[0]
        assert shown == default or (default == "" and shown == "empty"), name


def test_the_ingest_stack_output_table_is_the_templates(operations_md):
    outputs = load_template(INGEST_TEMPLATE)["Outputs"]
    rows = markdown_rows(operations_md, "| Output | Exported |")
    documented = {code_names(row[0])[0]: row[1] for row in rows}
    assert documented == {name: "yes" if "Export" in output else "no" for name, output in outputs.items()}


def test_the_job_zip_row_names_every_packaged_package(operations_md):
    row = next(
        line for line in operations_md.splitlines() if line.startswith("| `code/<version>/fruits_job.zip`")
    )
    assert set(PACKAGES) <= set(code_names(row))
    upload = next(line for line in operations_md.splitlines() if line.startswith("| `upload` |"))
    assert all(f"`{package}`" in upload for package in PACKAGES)
