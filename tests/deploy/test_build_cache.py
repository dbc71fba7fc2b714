"""The suite's cached builds: one at a time, stale leftovers (tests/build_cache.py), the packed env."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from operations.env_archive import ARCHIVE_NAME, EnvSpec
from tests import packed_env_cache
from tests.build_cache import STALE_PARTIAL_SECONDS, remove_stale, take_lock


def test_one_build_at_a_time_and_a_dead_ones_lock_is_taken_over(tmp_path):
    lock = tmp_path / ".spark-classes.jsa.lock"
    # GIVEN no lock THEN the first build takes it, and a second one (make test's, then pytest's) does not
    assert take_lock(lock) and lock.read_text() == str(os.getpid())
    assert not take_lock(lock)
    # GIVEN a lock left by a build that died THEN the next build takes it over
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    lock.write_text(finished.stdout.decode().strip())
    assert take_lock(lock) and lock.read_text() == str(os.getpid())


def test_a_killed_builds_leftovers_go_once_they_are_an_hour_old(tmp_path):
    old, fresh = tmp_path / ".archive.123", tmp_path / ".archive.456"
    old.write_text("partial")
    fresh.write_text("partial")
    an_hour_ago = time.time() - STALE_PARTIAL_SECONDS - 60
    os.utime(old, (an_hour_ago, an_hour_ago))
    remove_stale(tmp_path, ".archive.*")
    assert not old.exists() and fresh.exists()


@pytest.fixture
def fake_env_builds(monkeypatch, tmp_path) -> list[Path]:
    """tests/packed_env_cache.py with a cache in tmp_path and a build that writes a marker (the real
    build is the slow fixture of test_env_archive.py): the archives it built, in order."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    spec = EnvSpec(pins=("six==1.17.0",), python_prefix="/opt/python")
    monkeypatch.setattr(packed_env_cache, "suite_spec", lambda: spec)
    built: list[Path] = []

    def build(spec: EnvSpec, folder: Path) -> Path:
        path = folder / spec.version / ARCHIVE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"an archive")
        built.append(path)
        return path

    monkeypatch.setattr(packed_env_cache.env_archive, "ensure_env_archive", build)
    return built


def test_the_env_archive_is_built_once_and_another_keys_archive_removed(fake_env_builds):
    # GIVEN an archive of another builder in the cache
    other = packed_env_cache.cache_root() / "0123456789abcdef" / "env-1" / ARCHIVE_NAME
    other.parent.mkdir(parents=True)
    other.write_bytes(b"an older archive")
    # WHEN the suite asks for its archive twice
    first = packed_env_cache.cached_archive()
    second = packed_env_cache.cached_archive()
    # THEN it is built once, under this builder's key, and the other key's archive is gone
    assert fake_env_builds == [first] and second == first
    assert first.parent.parent == packed_env_cache.key_folder() and not other.parent.parent.exists()
    assert not (packed_env_cache.cache_root() / ".lock").exists()


def test_a_live_build_is_waited_for_and_a_build_that_never_ends_is_an_error(fake_env_builds):
    # GIVEN a live build's lock (this process) WHEN the archive appears a moment later
    root = packed_env_cache.cache_root()
    root.mkdir(parents=True)
    (root / ".lock").write_text(str(os.getpid()))
    path = packed_env_cache.archive_path(packed_env_cache.suite_spec())
    threading.Timer(0.5, lambda: (path.parent.mkdir(parents=True), path.write_bytes(b"built"))).start()
    # THEN the suite uses that build's archive instead of building its own
    assert packed_env_cache.cached_archive(wait_seconds=30) == path and fake_env_builds == []
    # AND a build that holds the lock without ever writing the archive ends in a clear error
    path.unlink()
    with pytest.raises(TimeoutError, match="did not finish"):
        packed_env_cache.cached_archive(wait_seconds=1)


def test_the_cache_key_follows_the_builders_source(monkeypatch, tmp_path):
    before = packed_env_cache.builder_key()
    changed = tmp_path / "env_archive.py"
    changed.write_bytes(Path(packed_env_cache.env_archive.__file__).read_bytes() + b"\n# changed\n")
    monkeypatch.setattr(packed_env_cache.env_archive, "__file__", str(changed))
    assert packed_env_cache.builder_key() != before
