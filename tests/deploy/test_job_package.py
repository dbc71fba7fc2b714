"""The job package EMR runs: deterministic, complete, importable from the zip itself."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from operations.env_archive import env_spec
from operations.job_package import build_job_package, collect_sources, content_version
from tests.deploy.emr_step import lay_out_step, spark_submit
from tests.deploy.test_import_rules import JOB_SUB_ROOMS


def test_same_sources_give_byte_identical_packages():
    # GIVEN the working tree
    # WHEN the package is built twice
    first, second = build_job_package(), build_job_package()
    # THEN the bytes and the version are identical, so the version names the code
    assert first.data == second.data
    assert first.version == second.version
    assert len(first.version) == 16


def test_entries_are_sorted_sources_with_fixed_metadata(tmp_path: Path):
    # GIVEN a built package written to disk
    package = build_job_package()
    archive_path = tmp_path / "fruits_job.zip"
    archive_path.write_bytes(package.data)
    # WHEN it is opened as a zip
    with zipfile.ZipFile(archive_path) as archive:
        infos = archive.infolist()
    names = [info.filename for info in infos]
    # THEN it holds sorted Python sources (and package data) of the job and the core, no caches
    assert names == sorted(names)
    assert {
        "streaming_job/config.py",
        "streaming_job/main.py",
        "fruits_core/contracts.py",
    } <= set(names)
    assert all(name.endswith((".py", ".json")) for name in names)
    assert not any("__pycache__" in name for name in names)
    # AND every entry has the fixed timestamp and mode (what makes the bytes reproducible)
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o644}


def test_version_changes_when_any_source_changes():
    # GIVEN the collected sources
    sources = collect_sources()
    # WHEN one byte of one file changes
    changed = dict(sources)
    changed["streaming_job/config.py"] = sources["streaming_job/config.py"] + b"\n"
    # THEN the version changes
    assert content_version(changed) != content_version(sources)


def test_the_zip_holds_the_spark_job_and_the_core_only():
    # GIVEN the job package WHEN its entries are listed
    names = collect_sources()
    # THEN every entry belongs to streaming_job/, fruits_lake/ or fruits_core/: the CLI, operations,
    # the demo, benchmarks and the Lambda's own modules stay home
    assert {name.split("/")[0] for name in names} == {"fruits_core", "fruits_lake", "streaming_job"}
    assert "streaming_job/main.py" in names
    assert "streaming_job/fit_pca_main.py" in names
    # AND each sub-room of the job is in it, while the demo's own quality measure and plots are not
    assert {f"streaming_job/{room}/__init__.py" for room in JOB_SUB_ROOMS} <= set(names)
    assert not [name for name in names if name.rsplit("/", 1)[-1] in ("quality.py", "plots.py")]


# Run in a fresh interpreter: only the zip, the standard library and the distributions of the job's
# packed environment (its pins, and pyspark, which EMR provides) can import.
PACKED_ENV_ONLY_PROBE = r"""
import importlib.abc, importlib.metadata as md, re, sys, zipfile

archive, pins = sys.argv[1], sys.argv[2:]


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(text):
    return canonical(re.split(r"[=<>!~;\[ (]", text.strip(), maxsplit=1)[0])


installed = {canonical(dist.metadata["Name"]): dist for dist in md.distributions()}
allowed, pending = set(), [requirement_name(pin) for pin in pins] + ["pyspark"]
while pending:
    name = pending.pop()
    if name in allowed or name not in installed:
        continue
    allowed.add(name)
    pending += [requirement_name(req) for req in installed[name].requires or [] if "extra ==" not in req]
in_zip = {"fruits_core", "fruits_lake", "streaming_job"}
blocked = {
    module
    for module, owners in md.packages_distributions().items()
    if module not in in_zip and not any(canonical(owner) in allowed for owner in owners)
}
blocked |= {"fruits_ingest", "fruits_cli", "operations", "demo", "benchmarks"}


class NotOnEmr(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"{name} is not installed on EMR", name=name)
        return None


sys.meta_path.insert(0, NotOnEmr())
sys.path.insert(0, archive)
modules = sorted(
    entry[:-3].replace("/", ".").removesuffix(".__init__")
    for entry in zipfile.ZipFile(archive).namelist()
    if entry.endswith(".py")
)
for name in modules:
    module = __import__(name, fromlist=["_"])
    assert module.__file__.startswith(archive), f"{name} imported from {module.__file__}"
print(len(modules))
"""


def test_every_module_of_the_zip_imports_with_only_the_packed_environment(tmp_path: Path, repo_root: Path):
    # GIVEN the zip on disk, as spark-submit --py-files puts it on sys.path
    archive_path = tmp_path / "fruits_job.zip"
    archive_path.write_bytes(build_job_package().data)
    # WHEN an isolated interpreter (-I: no checkout, no PYTHONPATH) imports every module of the zip,
    # with only the default (LiteRT, no TensorFlow) environment's packages importable
    pins = env_spec(repo_root / "pyproject.toml").pins
    result = subprocess.run(
        [sys.executable, "-I", "-c", PACKED_ENV_ONLY_PROBE, str(archive_path), *pins],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # THEN each module imports, from the zip
    assert result.returncode == 0, result.stderr[-3000:]
    modules_in_zip = sum(1 for name in collect_sources() if name.endswith(".py"))
    assert int(result.stdout.split()[-1]) == modules_in_zip


# main.py running the stream from the zip: tests/deploy/test_env_archive.py does it end to end, from the
# packed environment alone (no checkout, no PYTHONPATH), which is how the EMR step runs it.


@pytest.mark.slow
@pytest.mark.spark
def test_maintain_main_py_runs_from_the_zip_inside_a_spark_context(tmp_path: Path):
    # GIVEN a lake with both (empty) tables, and the zip + maintain_main.py laid out as the EMR step has them
    from fruits_lake.catalog import ensure_tables, open_catalog

    lake = tmp_path / "lake"
    ensure_tables(open_catalog(lake.as_uri()))
    step = lay_out_step(tmp_path / "step", "maintain_main.py")
    # WHEN spark-submit runs it
    result = spark_submit(step, "maintain_main.py", ["--lake", lake.as_uri(), "--json"], timeout=300)
    # THEN it maintains both tables, from a driver that started a SparkContext (which a YARN
    # cluster-mode application master waits for)
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(table["table"] for table in report["tables"]) == ["fruits.errors", "fruits.features"]
    assert "SparkContext: Running Spark version" in result.stderr
