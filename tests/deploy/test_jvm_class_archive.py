"""The suite's JVMs map Spark's classes from the class-data-sharing archive (tests/jvm_class_archive.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests import jvm_class_archive

# The background dump starts with the run and takes 30-50 s on 2 idle cores.
DUMP_WAIT_SECONDS = 600
# A Spark driver loads some 17,000 classes; from a working archive, most of them.
ARCHIVED_CLASSES_AT_LEAST = 5000
DRIVER = """
from streaming_job.session import build_spark_session
from tests.jvm_class_archive import stop_with_jvm
spark = build_spark_session("archive-check", master="local[1]")
assert spark.range(3).count() == 3
stop_with_jvm(spark)
"""


def test_every_jvm_gets_the_c1_only_jit_and_the_archive_unless_the_caller_set_its_own():
    options = os.environ["SPARK_SUBMIT_OPTS"]
    if "SharedArchiveFile" not in options:
        pytest.skip(f"SPARK_SUBMIT_OPTS set by the caller ({options!r}): the suite leaves it as it is")
    assert options == jvm_class_archive.java_options(jvm_class_archive.archive_path())
    assert options.startswith(jvm_class_archive.C1_ONLY) and "-Xlog:cds=off" in options


def test_without_java_the_suite_runs_with_c1_only_and_no_dump(monkeypatch, tmp_path):
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java-here"))
    assert jvm_class_archive.archive_path() is None
    assert jvm_class_archive.java_options(None) == jvm_class_archive.C1_ONLY
    jvm_class_archive.start_dump(None)  # nothing to write: no process, no error


def test_a_cache_folder_that_cannot_be_made_means_no_dump_and_no_error(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    jvm_class_archive.start_dump(blocked / "fruits-tests" / "spark-classes.jsa")
    assert blocked.read_text() == "not a folder"


def test_a_build_on_a_fresh_machine_makes_the_cache_folder_first(tmp_path):
    # GIVEN no cache folder yet (`make test` on a fresh machine) WHEN the build asks whether to dump
    archive = tmp_path / "no-cache-yet" / "fruits-tests" / "spark-classes.jsa"
    # THEN it is to be written, into a folder that now exists (the dump's lock goes there)
    assert jvm_class_archive.needs_dump(archive) and archive.parent.is_dir()
    archive.write_bytes(b"an archive")
    assert not jvm_class_archive.needs_dump(archive) and not jvm_class_archive.needs_dump(None)


def test_a_dump_that_finds_the_archive_or_a_live_lock_does_nothing(tmp_path):
    archive = tmp_path / "spark-classes.jsa"
    (tmp_path / f".{archive.name}.lock").write_text(str(os.getpid()))
    assert jvm_class_archive.dump(archive) == 0 and not archive.exists()
    archive.write_bytes(b"an archive")
    assert jvm_class_archive.dump(archive) == 0 and archive.read_bytes() == b"an archive"


@pytest.mark.spark
@pytest.mark.slow
def test_a_spark_driver_maps_most_of_its_classes_from_the_archive(tmp_path):
    options = os.environ["SPARK_SUBMIT_OPTS"]
    archive = jvm_class_archive.archive_path()
    if archive is None or "SharedArchiveFile" not in options:
        pytest.skip("no archive in this run (no java to key it on, or SPARK_SUBMIT_OPTS set by the caller)")
    # GIVEN the archive the run's background dump writes
    deadline = time.monotonic() + DUMP_WAIT_SECONDS
    while not archive.exists():
        assert time.monotonic() < deadline, f"{archive} not written in {DUMP_WAIT_SECONDS} s"
        time.sleep(2)
    # WHEN a Spark driver starts with the suite's options and logs where each class came from
    log = tmp_path / "classes.log"
    env = dict(os.environ, SPARK_SUBMIT_OPTS=f"{options} -Xlog:class+load=info:file={log}")
    driver = [sys.executable, "-c", DRIVER]
    done = subprocess.run(driver, cwd=jvm_class_archive.REPO_ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # THEN most classes came from the archive ("top": the dynamic layer over the JDK's own)
    sources = log.read_text().splitlines()
    archived = sum(line.endswith("source: shared objects file (top)") for line in sources)
    assert archived >= ARCHIVED_CLASSES_AT_LEAST, (archived, len(sources))
