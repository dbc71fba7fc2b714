"""The one configuration error of the pipeline, and the one way an entry point reports it."""

from __future__ import annotations

import sys
from collections.abc import Callable


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting and the fix."""


# The exit code of a configuration error, for every entry point (argparse's own usage errors exit 2 too).
CONFIG_ERROR_EXIT_CODE = 2


def exit_code_of(prog: str, run: Callable[[], int], report: Callable[[str], None] | None = None) -> int:
    """Run an entry point's work; a ConfigError is one line on stderr and exit code 2, not a traceback.

    `report` takes the message ("configuration error: ...") in place of that line, for an entry point
    that reports failures its own way (`fruits --json` adds a JSON object for scripts).
    """
    try:
        return run()
    except ConfigError as error:
        message = f"configuration error: {error}"
        if report is None:
            print(f"{prog}: {message}", file=sys.stderr)
        else:
            report(message)
        return CONFIG_ERROR_EXIT_CODE
