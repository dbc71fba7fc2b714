"""Newcomer errors: missing AWS credentials give one clear line and rc 2, from every command."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fruits_cli import main as cli_main
from fruits_core.aws_errors import CREDENTIALS_FIX, missing_credentials_message

REPO = Path(__file__).resolve().parents[2]


def _clean_environment(tmp_path: Path) -> dict[str, str]:
    """No AWS_* variable, empty credentials and config files, no instance metadata (no network here)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    for name in ("credentials", "config"):
        (tmp_path / name).write_text("", encoding="utf-8")
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "credentials")
    env["AWS_CONFIG_FILE"] = str(tmp_path / "config")
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.pop("FRUITS_LAKE", None)
    env.pop("FRUITS_STACK_NAME", None)
    return env


def _run_without_credentials(tmp_path: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """`fruits <argv>` in a fresh interpreter that finds no AWS credentials anywhere."""
    return subprocess.run(
        [sys.executable, "-m", "fruits_cli.main", *argv],
        cwd=REPO,
        env=_clean_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--lake", "s3://fruits-no-such-bucket-newcomer/lake"],
        ["deploy", "status", "--cluster-id", "j-NEWCOMER", "--lake", "s3://fruits-no-such-bucket-newcomer"],
    ],
    ids=["status", "deploy-status"],
)
def test_no_credentials_one_line_rc_2(tmp_path, argv):
    _check_one_line(tmp_path, argv)


def test_status_json_prints_json_on_a_credentials_error(tmp_path):
    # GIVEN no AWS credentials WHEN `fruits status --json` reads an s3:// lake
    completed = _run_without_credentials(
        tmp_path, ["status", "--json", "--lake", "s3://fruits-no-such-bucket/lake"]
    )
    # THEN rc 2, the one-line message on stderr, and a JSON object a script can parse on stdout
    assert completed.returncode == 2, completed.stderr
    report = json.loads(completed.stdout)
    assert report["error"] == "aws_credentials" and report["command"] == "status"
    assert "no usable AWS credentials" in report["message"]


def test_a_configuration_error_with_json_is_json_too(capsys, monkeypatch):
    monkeypatch.delenv("FRUITS_LAKE", raising=False)
    assert cli_main.main(["status", "--json"]) == 2  # no --lake, no FRUITS_LAKE
    report = json.loads(capsys.readouterr().out)
    assert report["error"] == "configuration_error" and "--lake" in report["message"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "argv",
    [
        ["stream", "--lake", "s3://fruits-no-such-bucket-newcomer/lake", "--available-now"],
        ["model", "export", "--out", "s3://fruits-no-such-bucket-newcomer/models/featurizer.tflite"],
    ],
    ids=["stream", "model-export"],
)
def test_no_credentials_spark_and_tf_commands(tmp_path, argv):
    """Spark prints its own start-up lines first; the pipeline's own output is still one line."""
    _check_one_line(tmp_path, argv, own_lines_only=True)


def _check_one_line(tmp_path: Path, argv: list[str], own_lines_only: bool = False) -> None:
    completed = _run_without_credentials(tmp_path, argv)
    assert completed.returncode == 2, completed.stderr
    lines = completed.stderr.strip().splitlines()
    if own_lines_only:
        lines = [line for line in lines if line.startswith("fruits ")]
    assert len(lines) == 1, completed.stderr
    assert "Traceback" not in completed.stderr
    assert lines[0].startswith(f"fruits {argv[0]}" + (" export:" if argv[0] == "model" else ""))
    assert "no usable AWS credentials" in lines[0]
    assert "AWS_PROFILE" in lines[0] and "AWS_ACCESS_KEY_ID" in lines[0]


def _raising(error: BaseException):
    def run(args):
        raise error

    return run


def test_main_catches_credentials_from_any_command(monkeypatch, capsys):
    """The detection lives in `fruits_cli.main`: any command, even through a wrapping exception."""
    from botocore.exceptions import NoCredentialsError

    try:
        try:
            raise NoCredentialsError()
        except NoCredentialsError as inner:
            raise RuntimeError("listing the lake failed") from inner
    except RuntimeError as wrapped:
        error = wrapped

    parser = cli_main.build_parser
    monkeypatch.setattr(
        cli_main,
        "build_parser",
        lambda: _with_run(parser(), _raising(error)),
    )
    assert cli_main.main(["status", "--lake", "s3://bucket/lake"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fruits status: no usable AWS credentials")
    assert CREDENTIALS_FIX in err


def _with_run(parser, run):
    parser.set_defaults(run=run)
    for action in parser._subparsers._group_actions:
        for sub in action.choices.values():
            sub.set_defaults(run=run)
    return parser


def test_other_errors_still_raise(monkeypatch):
    parser = cli_main.build_parser
    monkeypatch.setattr(cli_main, "build_parser", lambda: _with_run(parser(), _raising(KeyError("x"))))
    with pytest.raises(KeyError):
        cli_main.main(["status", "--lake", "s3://bucket/lake"])


def test_rejected_and_expired_credentials():
    from botocore.exceptions import ClientError, NoCredentialsError

    rejected = ClientError({"Error": {"Code": "InvalidAccessKeyId", "Message": "no"}}, "ListObjectsV2")
    assert "rejected (InvalidAccessKeyId)" in missing_credentials_message(rejected)
    denied = ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "ListObjectsV2")
    assert missing_credentials_message(denied) is None
    assert missing_credentials_message(ValueError("x")) is None
    assert missing_credentials_message(NoCredentialsError()).startswith("no usable AWS credentials")


@pytest.mark.parametrize("command", ["subject", "deploy"])
def test_every_action_says_what_it_does_in_its_own_help(command):
    def subcommands(parser):
        [choices] = [
            action.choices for action in parser._actions if isinstance(action, argparse._SubParsersAction)
        ]
        return choices

    actions = subcommands(subcommands(cli_main.build_parser())[command])
    assert actions
    for name, parser in actions.items():
        assert parser.description and len(parser.description) > 20, f"fruits {command} {name} --help"


def test_model_export_help_names_both_artifacts(capsys):
    with pytest.raises(SystemExit):
        cli_main.main(["model", "--help"])
    assert ".tflite for litert" in capsys.readouterr().out
