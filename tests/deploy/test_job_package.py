"""The job package EMR runs: deterministic, complete, importable from the zip itself."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from operations.job_package import build_job_package, collect_sources, content_version


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
    # THEN it holds sorted Python sources (and package data) of the three packages, no caches
    assert names == sorted(names)
    assert {
        "streaming_job/config.py",
        "fruits_cli/main.py",
        "fruits_core/contracts.py",
        "operations/pricing_eu.json",
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


def test_modules_import_from_the_zip_alone(tmp_path: Path):
    # GIVEN the package on disk, as spark-submit --py-files puts it on sys.path
    archive_path = tmp_path / "fruits_job.zip"
    archive_path.write_bytes(build_job_package().data)
    probe = (
        "import streaming_job.config as config, fruits_core.contracts as contracts\n"
        "import operations.cost as cost\n"
        "print(config.__file__); print(contracts.__file__)\n"
        "print(cost.estimate(1000).total_usd > 0)\n"
    )
    # WHEN a fresh interpreter imports the job's modules with the zip first on its path
    env = {**os.environ, "PYTHONPATH": str(archive_path)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    # THEN they come from the zip (package data included), not from the checkout
    assert result.returncode == 0, result.stderr
    config_file, contracts_file, cost_ok = result.stdout.split()
    assert config_file.startswith(str(archive_path))
    assert contracts_file.startswith(str(archive_path))
    assert cost_ok == "True"


def test_launcher_runs_a_fruits_command_from_the_zip(tmp_path: Path, repo_root: Path):
    # GIVEN the zip and the launcher uploaded as fruits_cli.py (what the fit-pca step runs)
    archive_path = tmp_path / "fruits_job.zip"
    archive_path.write_bytes(build_job_package().data)
    launcher = tmp_path / "fruits_cli.py"
    launcher.write_bytes((repo_root / "streaming_job" / "launcher.py").read_bytes())
    # WHEN it runs a fruits command with only the zip on the path
    env = {**os.environ, "PYTHONPATH": str(archive_path)}
    result = subprocess.run(
        [sys.executable, str(launcher), "cost", "--images-per-day", "10000", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # THEN the whole CLI (every command module) loads from the zip and the command runs
    assert result.returncode == 0, result.stderr
    assert '"images_per_day": 10000' in result.stdout
