"""Fixtures shared by every test package: real images, one SparkSession, moto, the model artifacts."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from streaming_job.featurizer.model import BUNDLED_IMAGES  # the committed subset (25 images per class)
from tests import jvm_class_archive

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Every driver JVM the suite starts gets `SPARK_SUBMIT_OPTS` (set it, even empty, to override).

    The shared session, each `fruits stream`, spark-submit, the demo, the bench's modes and the
    notebook's kernel compile with C1 only: the suite's JVMs live seconds to minutes, and on 2 cores
    C2's compiler threads took the CPU the tests wait for (a session's start and first queries: 48-70 s
    against 24-39 s on the loaded 2-core machine). And they map the Spark classes from a class-data-
    sharing archive, written in the background by the first run (tests/jvm_class_archive.py). The
    pytest-xdist workers inherit the variable from the controller, which starts the dump.
    """
    if "SPARK_SUBMIT_OPTS" in os.environ:
        return
    archive = jvm_class_archive.archive_path()
    os.environ["SPARK_SUBMIT_OPTS"] = jvm_class_archive.java_options(archive)
    jvm_class_archive.start_dump(archive)


# Folders whose tests share a costly session fixture (the benchmark lake, the scored classifier lake):
# their tests run on one pytest-xdist worker, so the fixture is built once.
SHARED_FIXTURE_FOLDERS = frozenset({"benchmarks", "classifier"})


def xdist_scope(nodeid: str) -> str:
    """The unit `make test`'s two workers share out: a test module, or a folder of SHARED_FIXTURE_FOLDERS.

    A module's tests stay on one worker, so a module fixture (a streamed lake, a packed environment)
    is built once; the session fixtures other than those folders' (the SparkSession, the fitted model
    pair) are built once per worker.
    """
    module = nodeid.split("::", 1)[0]
    parts = module.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in SHARED_FIXTURE_FOLDERS:
        return "/".join(parts[:2])
    return module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`-n 2 --dist loadscope` shares out xdist_scope units (pytest-xdist's own scope would be the module)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FixtureScopeScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_scope(nodeid)

    return FixtureScopeScheduling(config, log)


def slow_scopes_first(items: list, scope_of) -> list:
    """`items` with the units holding the most `slow` tests first (collection order otherwise kept).

    The two workers take units in this order, so the long end-to-end tests start early and the many
    quick modules fill in at the end, instead of one worker finishing a notebook run alone.
    """
    slow: dict[str, int] = {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        scope = scope_of(item.nodeid)
        first.setdefault(scope, index)
        slow[scope] = slow.get(scope, 0) + (item.get_closest_marker("slow") is not None)
    return sorted(items, key=lambda item: (-slow[scope_of(item.nodeid)], first[scope_of(item.nodeid)]))


def pytest_collection_modifyitems(config, items):
    if config.getoption("dist", default=None) == "loadscope":
        items[:] = slow_scopes_first(items, xdist_scope)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_images_dir() -> Path:
    """`<label>/<image>.jpg` folders of real Fruits-360 images."""
    return BUNDLED_IMAGES


@pytest.fixture(scope="session")
def sample_image_paths(sample_images_dir: Path) -> list[Path]:
    paths = sorted(sample_images_dir.glob("*/*.jpg"))
    assert len(paths) >= 100, f"bundled sample images missing under {sample_images_dir}"
    return paths


_SHARED_SESSION: list = []  # the `spark` fixture's session, once a test has asked for it


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (starting one costs seconds)."""
    from streaming_job.session import build_spark_session

    session = build_spark_session("fruits-tests", master="local[2]")
    _SHARED_SESSION.append(session)
    yield session
    _SHARED_SESSION.clear()
    session.stop()


@pytest.fixture(autouse=True, scope="module")
def _the_shared_session_survives(request):
    """Name the module whose code stopped the shared session (every later Spark test would fail on it)."""
    yield
    if _SHARED_SESSION and _SHARED_SESSION[0].sparkContext._jsc is None:
        pytest.fail(
            f"{request.module.__name__} stopped the shared SparkSession: library code must stop only "
            "a session it started (streaming_job.session.command_session)"
        )


# Fake credentials in the default region: with moto on, no call can reach a real account.
MOTO_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-3",
    "AWS_REGION": "eu-west-3",
}


@pytest.fixture
def mocked_aws(monkeypatch):
    """moto for every AWS service the project calls (S3, SQS, SSM, EMR, CloudFormation, Logs)."""
    from moto import mock_aws

    for name, value in MOTO_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def models(spark, sample_image_paths, tmp_path_factory) -> tuple[str, str]:
    """(featurizer URI, PCA URI): the default 96-px featurizer and a k=4 PCA fitted on real images.

    Fitted once per run (about 15 CPU-seconds): under pytest-xdist the first worker to ask fits it
    into the run's shared temporary folder, under a lock, and the other worker reads it there.
    """
    from tests.streaming.stream_testkit import PCA_SAMPLE, every_nth, fit_test_models

    sample = tuple(every_nth(sample_image_paths, PCA_SAMPLE))
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return fit_test_models(spark, sample, tmp_path_factory.mktemp("models"))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    with open(shared / "models.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = shared / "models.json"
        if not record.is_file():
            record.write_text(json.dumps(fit_test_models(spark, sample, shared / "models")))
        featurizer_uri, pca_uri = json.loads(record.read_text())
    return featurizer_uri, pca_uri
