"""The job package that EMR steps run: a deterministic zip of the project's Python packages.

spark-submit ships it with `--py-files`, so the driver and every executor import
the same code. Entries are sorted and carry a fixed timestamp and mode, so the
same sources always give the same archive; its `version` (a digest of the
entries' names and bytes) names the S3 prefix it is uploaded to.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

# The Spark job, its table layer and the standard-library core: nothing else runs on EMR (tests/deploy
# checks that the job imports neither the CLI, operations, the demo, benchmarks nor the Lambda-only modules).
PACKAGES: tuple[str, ...] = ("fruits_core", "fruits_lake", "streaming_job")
INCLUDED_SUFFIXES = (".py", ".json")
FIXED_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
VERSION_LENGTH = 16


@dataclass(frozen=True)
class JobPackage:
    data: bytes
    version: str


def package_directory(package: str) -> Path:
    """Where an importable package's sources are (works for editable and regular installs)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not importable: is the project installed?")
    return Path(next(iter(spec.submodule_search_locations)))


def collect_sources(packages: tuple[str, ...] = PACKAGES) -> dict[str, bytes]:
    """Archive name -> bytes of every source file of the packages (no caches, no tests)."""
    sources: dict[str, bytes] = {}
    for package in packages:
        root = package_directory(package)
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix not in INCLUDED_SUFFIXES:
                continue
            if "__pycache__" in path.parts:
                continue
            name = f"{package}/{path.relative_to(root).as_posix()}"
            sources[name] = path.read_bytes()
    return sources


def content_version(sources: dict[str, bytes]) -> str:
    """A digest of names and bytes: independent of zlib's output, stable across machines."""
    digest = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name]
        digest.update(name.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        digest.update(data)
    return digest.hexdigest()[:VERSION_LENGTH]


def build_zip(sources: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(sources):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so the mode below is honoured everywhere
            info.external_attr = FILE_MODE << 16
            archive.writestr(info, sources[name], compresslevel=9)
    return buffer.getvalue()


def build_job_package(packages: tuple[str, ...] = PACKAGES) -> JobPackage:
    sources = collect_sources(packages)
    return JobPackage(data=build_zip(sources), version=content_version(sources))
