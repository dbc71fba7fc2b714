"""`fruits`: the command line of the pipeline.

Usage: fruits <command> [options]   (fruits <command> --help for details)

Each command lives in its own module exposing `add_arguments(parser)` and
`run(args) -> int`. Command modules import TensorFlow, pyspark and boto3
inside `run`, so `fruits cost` or `fruits --help` start instantly.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from fruits_core.aws_errors import missing_credentials_message
from fruits_core.errors import CONFIG_ERROR_EXIT_CODE, exit_code_of

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("demo", "fruits_cli.demo", "local end-to-end demo on real images"),
    ("stream", "fruits_cli.stream", "run the streaming featurizer (same flags as main.py)"),
    ("fit-pca", "fruits_cli.fit_pca", "fit the PCA model on a sample of images"),
    ("model", "fruits_cli.model", "featurizer artifact commands (export)"),
    ("classifier", "fruits_cli.classifier", "train the fruit classifier; export the app's model"),
    ("status", "fruits_cli.status", "print the stream's health"),
    ("lake", "fruits_cli.lake", "maintain the lake's Iceberg tables (maintain)"),
    ("deploy", "fruits_cli.deploy", "deploy and operate the stream on Amazon EMR"),
    ("cost", "fruits_cli.cost", "estimate the monthly AWS cost"),
    ("subject", "fruits_cli.subject", "a data subject's export (GDPR Art. 15) or erasure (Art. 17)"),
    ("audit-pii", "fruits_cli.audit_pii", "scan the lake's objects and tables for raw personal data"),
    ("bench", "benchmarks.bench", "measure stream throughput against TensorFlow alone"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fruits", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        command_parser = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def report_config_error(message: str) -> None:
        report_failure(args, "configuration_error", message)

    try:
        return exit_code_of("fruits", lambda: args.run(args), report_config_error)
    except Exception as error:
        # Missing or rejected AWS credentials, from any command: one line and rc 2, not a traceback.
        message = missing_credentials_message(error)
        if message is None:
            raise
        return report_failure(args, "aws_credentials", message)


def report_failure(args: argparse.Namespace, kind: str, message: str) -> int:
    """One line on stderr, and with --json one JSON object on stdout (what a script parses); rc 2,
    as for every entry point's configuration error (fruits_core.errors)."""
    command = " ".join(filter(None, (args.command, getattr(args, "action", None))))
    print(f"fruits {command}: {message}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"error": kind, "message": message, "command": command}))
    return CONFIG_ERROR_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
