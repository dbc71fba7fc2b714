"""How `make test` shares the suite out between its two pytest-xdist workers (tests/conftest.py)."""

from __future__ import annotations

from tests.conftest import REPO_ROOT, SHARED_FIXTURE_FOLDERS, slow_scopes_first, xdist_scope


def test_a_module_is_one_unit_and_a_shared_fixture_folder_is_one_unit():
    # a module's tests (its module fixtures) stay together
    assert xdist_scope("tests/streaming/test_stream.py::test_x") == "tests/streaming/test_stream.py"
    assert xdist_scope("tests/streaming/test_stream.py::Case::test_y") == "tests/streaming/test_stream.py"
    # a parameter id holding '/' or '::' does not cut the module short
    assert xdist_scope("tests/lake/test_uris.py::test_join[a/b::c]") == "tests/lake/test_uris.py"
    # the benchmark lake and the scored lake are built once: their folders' modules share one worker
    assert xdist_scope("tests/benchmarks/test_bench_command.py::test_a") == "tests/benchmarks"
    assert (
        xdist_scope("tests/benchmarks/test_bench_stream_equivalence.py::test_b[keras]") == "tests/benchmarks"
    )
    assert xdist_scope("tests/classifier/test_app_model.py::test_c") == "tests/classifier"


def test_each_shared_fixture_folder_builds_a_session_fixture_in_its_conftest():
    for folder in SHARED_FIXTURE_FOLDERS:
        conftest = REPO_ROOT / "tests" / folder / "conftest.py"
        assert 'scope="session"' in conftest.read_text(), folder


class FakeItem:
    def __init__(self, nodeid: str, slow: bool = False) -> None:
        self.nodeid, self.slow = nodeid, slow

    def get_closest_marker(self, name: str):
        return object() if name == "slow" and self.slow else None


def test_the_units_with_the_most_slow_tests_are_handed_out_first_in_their_own_order():
    items = [
        FakeItem("tests/a/test_quick.py::t1"),
        FakeItem("tests/a/test_quick.py::t2"),
        FakeItem("tests/b/test_one_slow.py::t1", slow=True),
        FakeItem("tests/b/test_one_slow.py::t2"),
        FakeItem("tests/benchmarks/test_x.py::t1", slow=True),
        FakeItem("tests/benchmarks/test_y.py::t1", slow=True),
        FakeItem("tests/c/test_other_quick.py::t1"),
    ]

    ordered = [item.nodeid for item in slow_scopes_first(items, xdist_scope)]

    assert ordered == [
        "tests/benchmarks/test_x.py::t1",  # two slow tests in one unit (the folder)
        "tests/benchmarks/test_y.py::t1",
        "tests/b/test_one_slow.py::t1",  # one slow test; its quick neighbour stays with it, in order
        "tests/b/test_one_slow.py::t2",
        "tests/a/test_quick.py::t1",  # then the quick units, in collection order
        "tests/a/test_quick.py::t2",
        "tests/c/test_other_quick.py::t1",
    ]
