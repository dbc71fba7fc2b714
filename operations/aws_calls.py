"""Planned AWS API calls, and the two ways to run them: print (dry run) or call boto3.

`fruits deploy` builds every request as an `ApiCall` and hands it to an executor,
so `--dry-run` prints exactly the calls a real run makes, in the same order.
"""

from __future__ import annotations

import hashlib
import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO


@dataclass(frozen=True)
class LocalFile:
    """A request body read from a local file when the call runs (printed, never inlined)."""

    path: Path

    def describe(self) -> str:
        size = f"{self.path.stat().st_size} bytes" if self.path.exists() else "not there yet"
        return f"<file {self.path} ({size})>"


@dataclass(frozen=True)
class InlineBytes:
    """A request body built in memory (the job package, the stop marker)."""

    data: bytes
    label: str

    def describe(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:16]
        return f"<{self.label} ({len(self.data)} bytes, sha256 {digest}...)>"


@dataclass(frozen=True)
class ApiCall:
    service: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)

    def render(self) -> str:
        """`service.operation({...})`: the line a dry run prints."""
        return f"{self.service}.{self.operation}({json.dumps(self.params, default=_describe_body)})"


def _describe_body(value: Any) -> str:
    if isinstance(value, LocalFile | InlineBytes):
        return value.describe()
    raise TypeError(f"cannot render {type(value).__name__} in an API call")


class Executor(Protocol):
    dry_run: bool

    def __call__(self, call: ApiCall) -> dict[str, Any] | None: ...

    def note(self, text: str) -> None: ...


class DryRunExecutor:
    """Prints each call and calls nothing; every response is None (unknown)."""

    dry_run = True

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout
        self.calls: list[ApiCall] = []

    def __call__(self, call: ApiCall) -> None:
        self.calls.append(call)
        print(call.render(), file=self._out)
        return None

    def note(self, text: str) -> None:
        print(f"# {text}", file=self._out)


class Boto3Executor:
    """Runs each call with a boto3 client of the region (one client per service)."""

    dry_run = False

    def __init__(self, region: str, session: Any = None, out: TextIO | None = None) -> None:
        import boto3

        self._session = session or boto3.session.Session(region_name=region)
        self._region = region
        self._clients: dict[str, Any] = {}
        self._out = out or sys.stdout
        self.calls: list[ApiCall] = []

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service, region_name=self._region)
        return self._clients[service]

    def __call__(self, call: ApiCall) -> dict[str, Any]:
        self.calls.append(call)
        with ExitStack() as stack:
            params = {name: _materialize(value, stack) for name, value in call.params.items()}
            return getattr(self.client(call.service), call.operation)(**params)

    def note(self, text: str) -> None:
        print(text, file=self._out)


def _materialize(value: Any, stack: ExitStack) -> Any:
    if isinstance(value, LocalFile):
        return stack.enter_context(value.path.open("rb"))
    if isinstance(value, InlineBytes):
        return value.data
    return value
