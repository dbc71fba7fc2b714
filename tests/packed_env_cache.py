"""The packed job environment the deploy tests run, built once per content and cached outside the checkout.

`tests/deploy/test_env_archive.py` lists the archive `fruits deploy upload` ships and runs the stream
from it (operations/env_archive.py), linked to this machine's Python instead of EMR's. Building it is
40-50 CPU-seconds (pip installs the job's pins, venv-pack packs 600 MB), so `make test` builds it
beside its other installs, and a bare pytest builds it in the fixture (or waits for a build under
way). The cache key is what decides the archive's content: the exact pins and the interpreter prefix
(the spec's version), the builder's source, pip's and venv-pack's versions. A new key's build removes
the other keys' archives. The builder itself is tested fresh on every run
(`test_an_archive_for_emr_links_to_the_nodes_python` packs a one-wheel environment).

    python -m tests.packed_env_cache build    # build it, unless cached or being built (make test)
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fruits_core.errors import ConfigError
from operations import env_archive
from tests.build_cache import REPO_ROOT, cache_dir, remove_stale, take_lock

# A build takes a minute on 2 idle cores, minutes while the other environments install.
BUILD_WAIT_SECONDS = 900


def cache_root() -> Path:
    return cache_dir() / "env-archives"


def builder_key() -> str:
    """What builds the archive: the builder's source, pip's and venv-pack's versions."""
    blob = Path(env_archive.__file__).read_bytes()
    blob += "".join(f"{name}=={importlib.metadata.version(name)};" for name in ("pip", "venv-pack")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def suite_spec() -> env_archive.EnvSpec:
    """The default (LiteRT) archive, linked to this machine's Python 3.11 instead of EMR's /usr."""
    return env_archive.env_spec(REPO_ROOT / "pyproject.toml", python_prefix=sys.base_prefix)


def key_folder() -> Path:
    return cache_root() / builder_key()


def archive_path(spec: env_archive.EnvSpec) -> Path:
    return key_folder() / spec.version / env_archive.ARCHIVE_NAME


def build_under_lock(spec: env_archive.EnvSpec) -> bool:
    """Build the archive unless it is there; False when another live build holds the lock."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    lock = root / ".lock"
    remove_stale(root, ".lock")
    if not take_lock(lock):
        return False
    try:
        for other in root.iterdir():
            if other.is_dir() and other != key_folder():
                shutil.rmtree(other, ignore_errors=True)  # another builder's or pins' archive
        env_archive.ensure_env_archive(spec, key_folder())
    finally:
        lock.unlink(missing_ok=True)
    return True


def cached_archive(wait_seconds: float = BUILD_WAIT_SECONDS) -> Path:
    """The archive: cached, else waited for (a live build holds the lock), else built here."""
    spec = suite_spec()
    path = archive_path(spec)
    deadline = time.monotonic() + wait_seconds
    while not path.is_file():
        if not build_under_lock(spec):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the packed environment's build did not finish in {wait_seconds} s")
            time.sleep(1)
    return path


if __name__ == "__main__":
    if sys.argv[1:] == ["build"]:
        try:
            build_under_lock(suite_spec())
        except (ConfigError, OSError, subprocess.CalledProcessError) as error:
            # Not a reason to stop `make test`: the deploy tests build it themselves and fail there.
            print(f"note: the packed environment was not built: {error}", file=sys.stderr)
    else:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1])
