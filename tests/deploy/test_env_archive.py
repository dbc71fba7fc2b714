"""The job's packed Python environment: built with venv-pack, and the stream runs from it alone."""

from __future__ import annotations

import os
import sys
import tarfile
from pathlib import Path

import pyspark
import pytest

from fruits_lake.reading import read_features
from operations.deploy import ENV_ALIAS, packed_env_args
from operations.env_archive import (
    ARCHIVE_NAME,
    EMR_PYTHON_PREFIX,
    EnvSpec,
    archive_sizes,
    build_env_archive,
    link_interpreter_for_venv_pack,
)
from tests import packed_env_cache
from tests.deploy.emr_step import lay_out_step, spark_submit

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@pytest.fixture(scope="session")
def local_env_archive() -> Path:
    """The default (LiteRT) archive, linked to this machine's Python 3.11 instead of EMR's /usr.

    Cached per content (tests/packed_env_cache.py): `make test` builds it beside its other installs,
    before the tests start; a bare pytest builds it here (40-50 CPU-seconds).
    """
    return packed_env_cache.cached_archive()


@pytest.fixture(scope="module")
def unpacked_env(local_env_archive: Path, tmp_path_factory) -> Path:
    """The archive unpacked once, as YARN localizes it: a folder each container links as ./environment."""
    folder = tmp_path_factory.mktemp("unpacked-env")
    with tarfile.open(local_env_archive, "r:gz") as archive:
        archive.extractall(folder, filter="tar")
    return folder


@pytest.mark.slow
def test_the_archive_holds_the_litert_runtime_without_tensorflow_or_pyspark(
    local_env_archive: Path, unpacked_env: Path
):
    # GIVEN the default archive, unpacked WHEN its site-packages are listed
    packages = {path.name for path in (unpacked_env / "lib" / "python3.11" / "site-packages").iterdir()}
    # THEN it has what the job imports on the workers, and neither TensorFlow nor PySpark (EMR's own)
    assert {"ai_edge_litert", "numpy", "pandas", "pyarrow", "PIL", "boto3", "flatbuffers"} <= packages
    assert not {"tensorflow", "pyspark", "matplotlib", "aws_lambda_powertools"} & packages
    # AND its interpreter is a link to the prefix it was packed for (venv-pack copies no Python)
    python = unpacked_env / "bin" / "python3.11"
    assert python.is_symlink() and os.readlink(python) == f"{sys.base_prefix}/bin/python3.11"
    sizes = archive_sizes(local_env_archive)
    assert 0 < sizes.packed_bytes < sizes.unpacked_bytes


def test_the_interpreter_link_is_rewritten_to_the_prefix_without_doubling_the_version(tmp_path: Path):
    # GIVEN a venv as `python -m venv` lays it out (python3.11 -> <home>/python3.11)
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    (env / "pyvenv.cfg").write_text("home = /opt/python/bin\ninclude-system-site-packages = false\n")
    (env / "bin" / "python3.11").symlink_to("/opt/python/bin/python3.11")
    # WHEN it is prepared for venv-pack
    link_interpreter_for_venv_pack(env)
    # THEN the versioned link goes through <home>/python, which venv-pack swaps for <prefix>/bin/python3.11
    assert os.readlink(env / "bin" / "python3.11") == "/opt/python/bin/python"


def test_an_archive_for_emr_links_to_the_nodes_python(tmp_path: Path):
    # GIVEN a one-wheel environment packed for EMR's prefix (the default of `fruits deploy upload`)
    spec = EnvSpec(pins=("six==1.17.0",))
    archive_path = build_env_archive(spec, tmp_path / ARCHIVE_NAME)
    # WHEN its interpreter links and pyvenv.cfg are read
    with tarfile.open(archive_path, "r:gz") as archive:
        links = {name: archive.getmember(f"bin/{name}").linkname for name in ("python", "python3.11")}
        pyvenv = archive.extractfile("pyvenv.cfg").read().decode()
    # THEN bin/python resolves to EMR 8's /usr/bin/python3.11, as the bootstrap action checks
    assert spec.python_prefix == EMR_PYTHON_PREFIX
    assert links == {"python": "python3.11", "python3.11": f"{EMR_PYTHON_PREFIX}/bin/python3.11"}
    assert f"home = {EMR_PYTHON_PREFIX}/bin" in pyvenv


@pytest.mark.slow
@pytest.mark.spark
def test_spark_submit_runs_the_stream_from_the_packed_environment(
    tmp_path: Path, local_env_archive: Path, unpacked_env: Path, models, sample_image_paths
):
    # GIVEN a small local lake of ingested images, the model artifacts, and the step's files:
    # main.py alone, the job zip, and the environment archive (as the EMR step references them)
    from tests.streaming.stream_testkit import ingest_images

    featurizer_uri, pca_uri = models
    lake = tmp_path / "lake"
    images = sample_image_paths[:6]
    ingest_images(lake, tmp_path / "uploads", images)
    step = lay_out_step(tmp_path / "step", "main.py")
    # AND the archive unpacked and linked as ./environment of the working directory, as YARN links it
    # in each container: local mode runs its workers in the driver's directory, not where it unpacks
    # --archives
    (step / ENV_ALIAS).symlink_to(unpacked_env, target_is_directory=True)
    # AND no other interpreter with the job's packages anywhere: no PYSPARK_* or PYTHON* variables,
    # and a PATH without this virtualenv or pyenv (/usr/bin/python3 has neither pandas nor LiteRT)
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PYSPARK_", "PYTHON"))}
    env["PATH"] = SYSTEM_PATH
    env["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
    # WHEN spark-submit runs main.py --available-now with the EMR step's environment options
    result = spark_submit(
        step,
        "main.py",
        ["--lake", lake.as_uri(), "--featurizer", featurizer_uri, "--pca", pca_uri, "--available-now"],
        master="local[2]",
        submit_args=tuple(packed_env_args(str(local_env_archive))),
        env=env,
    )
    # THEN it exits 0 with a feature row per image, each featurized by LiteRT in a packed worker
    assert result.returncode == 0, result.stderr[-4000:]
    features = read_features(lake.as_uri())
    assert features.num_rows == len(images)
    assert all("litert" in version for version in features.column("model_version").to_pylist())
