"""The one configuration error of the pipeline: every entry point catches this class."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the setting and the fix."""
