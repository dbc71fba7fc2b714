"""Which distributions the job's packed Python environment holds (pure: no installs, no I/O).

The source of truth is pyproject.toml's `dependencies`, minus EXCLUDED (each with its reason).
Every distribution is pinned to the version installed where the archive is built (the versions
the test suite ran with), its own dependencies included, so the archive holds exactly the set
that was tested and `pip install --no-deps` needs no resolver and no index beyond the wheels.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from packaging.markers import Marker
from packaging.requirements import Requirement

# pyproject.toml dependencies the EMR job does not ship, and why.
EXCLUDED: dict[str, str] = {
    "pyspark": "EMR provides Spark's own PySpark (and its pyspark.zip on the workers' PYTHONPATH)",
    "tensorflow-cpu": "only the keras runtime needs it (~600 MB unpacked): opt in with --keras-runtime",
    "tensorflow": "the macOS variant of tensorflow-cpu (keras runtime only)",
    "aws-lambda-powertools": "the ingest Lambda's (lambdas/ingest/requirements.txt), not the job's",
    "matplotlib": "the local demo's plots",
    "tqdm": "the local demo's progress bars",
}
# Put back by --keras-runtime (the `.keras` featurizer runs on TensorFlow).
KERAS_RUNTIME = frozenset({"tensorflow-cpu", "tensorflow"})
# EMR 8 nodes: Amazon Linux 2023, x86_64, CPython 3.11. Markers are evaluated for them, not for the
# machine that builds (which must match anyway: pip installs wheels for the machine it runs on).
TARGET_PLATFORM: dict[str, str] = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
}
VERSION_LENGTH = 16


class JobEnvError(ValueError):
    """The dependency list cannot be pinned (a distribution missing, or outside its range)."""


@dataclass(frozen=True)
class Installed:
    """One distribution of the building environment: its version and its `Requires-Dist` lines."""

    version: str
    requires: tuple[str, ...] = ()


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def job_dependencies(project_dependencies: list[str], keras_runtime: bool = False) -> list[Requirement]:
    """pyproject's dependencies that run on the cluster: EXCLUDED dropped, markers of TARGET_PLATFORM."""
    kept = []
    for text in project_dependencies:
        requirement = Requirement(text)
        name = canonical(requirement.name)
        if name in EXCLUDED and not (keras_runtime and name in KERAS_RUNTIME):
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(dict(TARGET_PLATFORM)):
            continue
        kept.append(requirement)
    return kept


def _applies(marker: Marker | None, extras: frozenset[str]) -> bool:
    if marker is None:
        return True
    return any(marker.evaluate({**TARGET_PLATFORM, "extra": extra}) for extra in extras | {""})


def pinned_closure(requirements: list[Requirement], installed: Mapping[str, Installed]) -> list[str]:
    """`name==version` for the requirements and everything they need, as installed; sorted.

    A direct requirement's version must lie in pyproject's range. Requested extras bring
    their own dependencies (`pyiceberg[sql-sqlite]` brings SQLAlchemy).
    """
    pins: dict[str, str] = {}
    pending: list[tuple[Requirement, bool]] = [(requirement, True) for requirement in requirements]
    seen_extras: dict[str, frozenset[str]] = {}
    while pending:
        requirement, direct = pending.pop()
        name = canonical(requirement.name)
        found = installed.get(name)
        if found is None:
            raise JobEnvError(f"{requirement} is not installed here: run `make venv` first")
        if direct and not requirement.specifier.contains(found.version, prereleases=True):
            raise JobEnvError(f"{name} {found.version} is installed, outside pyproject's {requirement}")
        extras = seen_extras.get(name, frozenset()) | frozenset(requirement.extras)
        if name in pins and extras == seen_extras.get(name):
            continue
        pins[name] = found.version
        seen_extras[name] = extras
        for line in found.requires:
            dependency = Requirement(line)
            if _applies(dependency.marker, extras):
                pending.append((dependency, False))
    return sorted(f"{name}=={version}" for name, version in pins.items())


def env_version(pins: list[str], python_prefix: str) -> str:
    """Names the archive on S3: a digest of the pins and of the interpreter it links to."""
    digest = hashlib.sha256("\n".join([f"python-prefix {python_prefix}", *sorted(pins)]).encode("utf-8"))
    return digest.hexdigest()[:VERSION_LENGTH]
