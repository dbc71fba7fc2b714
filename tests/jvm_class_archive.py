"""A class-data-sharing archive of the Spark classes the suite's JVMs load, so each starts faster.

Every driver JVM the suite starts (each worker's shared session, each `fruits stream`, the demo, the
bench's modes, the notebook's kernel) loads, verifies and links the same thousands of classes of
Spark and its libraries before its first query. Java's dynamic AppCDS (JDK 13+) dumps the classes one JVM
loaded into an archive at its exit (`-XX:ArchiveClassesAtExit`); a JVM started with
`-XX:SharedArchiveFile` maps them, already parsed and verified. Measured on the 2-core VM, a
`fruits stream --available-now` of 64 images took 26-28 CPU-seconds without it and 18-20 with it
(docs/testing.md).

`tests/conftest.py` gives every JVM the archive's options (through `SPARK_SUBMIT_OPTS`) and starts
the dump in the background the first time (`make test` writes it before, beside its other installs,
so it is there when the tests start); a JVM started before the archive exists, or whose class
path differs (another Spark install), runs as before, silently. The archive changes
start-up time only, never a result. It is cached per Java and pyspark install, outside the checkout.

    python -m tests.jvm_class_archive build           # write this install's archive, unless done (make test)
    python -m tests.jvm_class_archive dump ARCHIVE    # run the workload in a JVM that writes ARCHIVE
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.build_cache import REPO_ROOT, cache_dir, remove_stale, start_detached, take_lock

# JIT: C1 only (tests/conftest.py says why).
C1_ONLY = "-XX:TieredStopAtLevel=1"
# An archive that cannot be used (class path mismatch, not written yet) is ignored without a word.
QUIET_CDS = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def java_command() -> str:
    """The java pyspark's launcher runs: JAVA_HOME's, else the PATH's."""
    java_home = os.environ.get("JAVA_HOME")
    return str(Path(java_home) / "bin" / "java") if java_home else "java"


def install_key() -> str | None:
    """What an archive is valid for: this Java, this pyspark and its jars (None: no java to run)."""
    import pyspark

    try:
        java = subprocess.run([java_command(), "-version"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    jars = Path(pyspark.__file__).parent / "jars"
    listing = sorted((path.name, path.stat().st_size) for path in jars.glob("*.jar"))
    blob = json.dumps([java_command(), java.stderr, pyspark.__version__, str(jars), listing])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def archive_path() -> Path | None:
    key = install_key()
    return None if key is None else cache_dir() / f"spark-classes-{key}.jsa"


def java_options(archive: Path | None) -> str:
    """The options every suite JVM gets: C1 only, and the archive when there is one (used once it exists)."""
    return C1_ONLY if archive is None else f"{C1_ONLY} -XX:SharedArchiveFile={archive} {QUIET_CDS}"


def needs_dump(archive: Path | None) -> bool:
    """Whether `archive` is to be written: not there yet, and its cache folder exists or can be made
    (else the JVMs run without it). Clears what a killed dump left there."""
    if archive is None or archive.exists():
        return False
    try:
        archive.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    remove_stale(archive.parent, f".{archive.name}.*")  # partial archives and the lock
    return True


def start_dump(archive: Path | None) -> None:
    """Write `archive` in the background, unless it is there (detached: a short run may end first)."""
    if needs_dump(archive):
        start_detached("tests.jvm_class_archive", "dump", str(archive))


def dump(archive: Path) -> int:
    """Run `workload` in a JVM that archives its classes at exit, then move the archive into place."""
    lock = archive.with_name(f".{archive.name}.lock")
    if archive.exists() or not take_lock(lock):
        return 0
    partial = archive.with_name(f".{archive.name}.{os.getpid()}")
    env = dict(os.environ, SPARK_SUBMIT_OPTS=f"{C1_ONLY} -XX:ArchiveClassesAtExit={partial} {QUIET_CDS}")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.jvm_class_archive", "workload"], cwd=REPO_ROOT, env=env, check=False
        )
        if done.returncode == 0 and partial.exists():
            os.replace(partial, archive)  # atomic: a JVM sees the whole archive or none
        return done.returncode
    finally:
        partial.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)


def workload() -> None:
    """What the suite's drivers do: a local session, Spark ML save and load, a text stream through
    foreachBatch, from_json, mapInPandas and toArrow."""
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import PCA, StandardScaler
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    from streaming_job.session import build_spark_session

    root = Path(tempfile.mkdtemp(prefix="fruits-jvm-classes-"))
    source = root / "manifests" / "dt=2024-05-01"
    source.mkdir(parents=True)
    for index in range(4):
        (source / f"{index}.json").write_text(json.dumps({"n": index, "s": "x"}) + "\n")
    spark = build_spark_session("fruits-tests-jvm-classes", master="local[2]")
    vectors = spark.createDataFrame([([float(i), float(i * i), 1.0],) for i in range(6)], "v array<double>")
    vectors = vectors.select(array_to_vector("v").alias("v"))
    stages = [
        StandardScaler(inputCol="v", outputCol="centred", withMean=True, withStd=False),
        PCA(k=2, inputCol="centred", outputCol="scores"),
    ]
    Pipeline(stages=stages).fit(vectors).write().overwrite().save(str(root / "pca"))
    PipelineModel.load(str(root / "pca")).transform(vectors).select(vector_to_array("scores")).collect()

    def each_batch(frame, _batch_id) -> None:
        parsed = frame.select(F.from_json("value", "n long, s string", {"mode": "PERMISSIVE"}).alias("m"))
        rows = parsed.select("m.*", F.input_file_name().alias("file"))
        rows.mapInPandas(
            lambda batches: (batch.assign(n=batch.n * 2) for batch in batches), rows.schema
        ).toArrow()

    query = (
        spark.readStream.format("text")
        .option("recursiveFileLookup", "true")
        .load(str(root / "manifests"))
        .writeStream.foreachBatch(each_batch)
        .option("checkpointLocation", str(root / "checkpoint"))
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    stop_with_jvm(spark)
    shutil.rmtree(root, ignore_errors=True)


def stop_with_jvm(spark) -> None:
    """Stop the session and wait for its JVM to exit (it writes its archive and flushes its logs then)."""
    jvm = spark.sparkContext._gateway.proc
    spark.stop()
    jvm.stdin.close()  # pyspark's gateway JVM exits when its stdin closes
    jvm.wait()


if __name__ == "__main__":
    if sys.argv[1:2] == ["workload"]:
        workload()
    elif sys.argv[1:] == ["build"]:
        archive = archive_path()
        if needs_dump(archive) and dump(archive) != 0:  # the JVMs then run without it, as before
            print(f"note: {archive} was not written; the tests' JVMs start without it", file=sys.stderr)
    elif sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        sys.exit(dump(Path(sys.argv[2])))
    else:
        sys.exit(__doc__.rsplit("\n\n", 1)[-1])
