"""The streaming featurizer, as `spark-submit` runs it (on EMR: one step of the cluster).

Usage:
    spark-submit [spark options] streaming_job/main.py --lake s3://bucket[/prefix] [options]
    spark-submit --master 'local[*]' streaming_job/main.py --lake file:///abs/lake --available-now

The options are exactly those of `fruits stream` (see `fruits stream --help`),
except `--master`, which spark-submit decides. The query reads
<lake>/manifests/, writes <lake>/features/ and <lake>/errors/ exactly once,
and stops cleanly on SIGTERM or when <lake>/control/stop-stream appears.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    # Run as a script, Python puts streaming_job/ itself first on sys.path, where its modules
    # could shadow installed packages of the same name. Import the package from its parent.
    _HERE = Path(__file__).resolve().parent
    sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))

from fruits_core.errors import exit_code_of
from streaming_job.config import add_stream_arguments, config_from_args
from streaming_job.query.runner import configure_logging, run_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description=__doc__.splitlines()[0])
    add_stream_arguments(parser)
    args = parser.parse_args(argv)
    return exit_code_of("main.py", lambda: _run(args))


def _run(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # a ConfigError stops here, before any Spark or logging
    configure_logging()
    return run_stream(config)


if __name__ == "__main__":
    sys.exit(main())
