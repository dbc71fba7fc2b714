"""Artifacts the suite builds once per machine and keeps outside the checkout, one builder at a time.

The JVM class archive (tests/jvm_class_archive.py) and the packed job environment
(tests/packed_env_cache.py) cost tens of CPU-seconds to build and change only with what they are
keyed on, so `make test` builds them beside its other environments' installs and the tests find
them done. A lock (the builder's pid) keeps one build at a time; a build that died leaves a lock the
next one takes over.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A partial file (or a lock) this old belongs to a build that was killed.
STALE_PARTIAL_SECONDS = 3600


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fruits-tests"


def take_lock(lock: Path) -> bool:
    """One build at a time (`make test` runs one, a pytest beside it may too): False if a live one has it."""
    for _ in range(2):
        try:
            with lock.open("x") as held:
                held.write(str(os.getpid()))
            return True
        except FileExistsError:
            try:
                os.kill(int(lock.read_text() or 0), 0)
                return False
            except (ProcessLookupError, ValueError):
                lock.unlink(missing_ok=True)  # its builder died: take it over
            except (FileNotFoundError, PermissionError):
                return False
    return False


def remove_stale(folder: Path, pattern: str) -> None:
    """Delete what a killed build left behind (partial files, its lock) once it is an hour old."""
    for leftover in folder.glob(pattern):
        if time.time() - leftover.stat().st_mtime > STALE_PARTIAL_SECONDS:
            leftover.unlink(missing_ok=True)


def start_detached(module: str, *args: str) -> None:
    """Run `python -m module args` in the background, detached: a short test run may end first."""
    subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
