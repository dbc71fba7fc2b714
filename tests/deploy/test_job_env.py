"""The job environment's pin list: derived from pyproject.toml, exclusions with reasons, exact pins."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from operations.job_env import (
    EXCLUDED,
    KERAS_RUNTIME,
    Installed,
    JobEnvError,
    canonical,
    env_version,
    job_dependencies,
    pinned_closure,
)

PROJECT = [
    "aws-lambda-powertools[tracer,parser]>=3.5,<4",
    "pillow>=11,<13",
    "pyspark==4.0.1",
    "tensorflow-cpu==2.20.0; sys_platform == 'linux'",
    "tensorflow==2.20.0; sys_platform == 'darwin'",
    "ai-edge-litert==2.3.0",
    "pyiceberg[sql-sqlite]>=0.9",
]
INSTALLED = {
    "pillow": Installed("12.3.0"),
    "ai-edge-litert": Installed(
        "2.3.0", ("numpy>=1.23", "tqdm", "backports.strenum; python_version < '3.11'")
    ),
    "numpy": Installed("2.4.6"),
    "tqdm": Installed("4.70.1", ("colorama; platform_system == 'Windows'",)),
    "tensorflow-cpu": Installed("2.20.0", ("numpy>=1.26",)),
    "pyiceberg": Installed(
        "0.10.0", ("pyparsing>=3", "sqlalchemy>=2; extra == 'sql-sqlite'", "pyarrow; extra == 'pyarrow'")
    ),
    "pyparsing": Installed("3.2.0"),
    "sqlalchemy": Installed("2.0.40", ("greenlet; platform_machine == 'x86_64'",)),
    "greenlet": Installed("3.2.0"),
}


def names(requirements) -> list[str]:
    return [canonical(requirement.name) for requirement in requirements]


def test_exclusions_drop_what_emr_provides_and_what_only_other_rooms_use():
    # GIVEN pyproject-like dependencies WHEN the job's are taken for EMR (Linux)
    kept = names(job_dependencies(PROJECT))
    # THEN PySpark, TensorFlow and the Lambda's powertools are out; the rest is kept, in order
    assert kept == ["pillow", "ai-edge-litert", "pyiceberg"]


def test_the_keras_runtime_brings_back_the_linux_tensorflow_only():
    kept = names(job_dependencies(PROJECT, keras_runtime=True))
    assert "tensorflow-cpu" in kept
    assert "tensorflow" not in kept  # its marker names macOS, not the nodes


def test_every_distribution_is_pinned_to_its_installed_version_with_its_own_dependencies():
    # GIVEN the job's dependencies and what this environment has installed
    pins = pinned_closure(job_dependencies(PROJECT), INSTALLED)
    # THEN each one and everything it needs on the nodes is pinned exactly: the requested extra's
    # SQLAlchemy yes, an unrequested extra's pyarrow no, Windows/older-Python-only packages no
    assert pins == [
        "ai-edge-litert==2.3.0",
        "greenlet==3.2.0",
        "numpy==2.4.6",
        "pillow==12.3.0",
        "pyiceberg==0.10.0",
        "pyparsing==3.2.0",
        "sqlalchemy==2.0.40",
        "tqdm==4.70.1",
    ]


def test_an_installed_version_outside_pyproject_s_range_is_refused():
    installed = {**INSTALLED, "pillow": Installed("10.4.0")}
    with pytest.raises(JobEnvError, match=r"pillow 10\.4\.0 is installed, outside"):
        pinned_closure(job_dependencies(PROJECT), installed)


def test_a_dependency_missing_here_is_refused():
    installed = {name: dist for name, dist in INSTALLED.items() if name != "numpy"}
    with pytest.raises(JobEnvError, match="numpy"):
        pinned_closure(job_dependencies(PROJECT), installed)


def test_the_version_changes_with_any_pin_or_the_interpreter_prefix():
    pins = ["numpy==2.4.6", "pillow==12.3.0"]
    assert env_version(pins, "/usr") == env_version(list(reversed(pins)), "/usr")
    assert env_version(pins, "/usr") != env_version(["numpy==2.4.5", "pillow==12.3.0"], "/usr")
    assert env_version(pins, "/usr") != env_version(pins, "/opt/python")


def test_every_exclusion_names_a_real_pyproject_dependency(repo_root: Path):
    # GIVEN the project's dependencies THEN the exclusion list only names packages it declares
    # (a renamed dependency must not slip into the archive under its new name unnoticed)
    dependencies = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {canonical(Requirement(line).name) for line in dependencies}
    assert set(EXCLUDED) <= declared
    assert set(KERAS_RUNTIME) <= set(EXCLUDED)
