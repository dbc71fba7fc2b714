"""Which room may import which: read from the sources (every import statement, lazy ones included)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Modules that exist only beside the job (the CLI, operations, the demo, benchmarks) or only in the
# Lambda (which also brings Powertools and pydantic): none of them is in the EMR zip.
NOT_ON_EMR = (
    "fruits_cli",
    "fruits_classifier",
    "operations",
    "demo",
    "benchmarks",
    "fruits_ingest",
    "app",
    "aws_lambda_powertools",
)
ROOMS = (
    "fruits_core",
    "fruits_lake",
    "streaming_job",
    "fruits_classifier",
    "fruits_cli",
    "operations",
    "demo",
    "benchmarks",
    "fruits_ingest",
)


def imported_modules(path: Path, with_names: bool = False) -> set[str]:
    """Every module a module imports, lazy ones too (`with_names`: `from pkg import mod` adds pkg.mod)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if with_names:
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def sources(folder: str) -> list[Path]:
    return sorted((REPO_ROOT / folder).rglob("*.py"))


def offending(folder: str, refused: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in sources(folder):
        bad = sorted(name for name in imported_modules(path) if name.partition(".")[0] in refused)
        if bad:
            found[str(path.relative_to(REPO_ROOT))] = bad
    return found


def test_the_spark_job_imports_nothing_that_stays_off_emr():
    # GIVEN every module of streaming_job/ WHEN its imports are read
    # THEN none names the CLI, operations, the demo, benchmarks or a Lambda-only module
    assert offending("streaming_job", NOT_ON_EMR) == {}


def test_the_core_imports_the_standard_library_only():
    # GIVEN every module of fruits_core/ WHEN its imports are read
    third_party = {
        name
        for path in sources("fruits_core")
        for name in imported_modules(path)
        if name.partition(".")[0] not in sys.stdlib_module_names and not name.startswith("fruits_core")
    }
    # THEN they are standard-library modules or the core itself (the Lambda and the zip both ship it)
    assert third_party == set()


@pytest.mark.parametrize("room", ["fruits_ingest", "fruits_core"])
def test_the_shared_halves_never_import_the_rooms_above_them(room):
    folder = "lambdas/ingest/fruits_ingest" if room == "fruits_ingest" else room
    above = tuple(name for name in ROOMS if name not in (room, "fruits_core"))
    assert offending(folder, above) == {}


def test_the_table_layer_imports_only_the_core_and_never_spark():
    # GIVEN every module of fruits_lake/ (shared by the stream, the CLI and operations)
    # WHEN its imports are read THEN it names no other room and not pyspark
    above = tuple(name for name in ROOMS if name not in ("fruits_lake", "fruits_core"))
    assert offending("fruits_lake", (*above, "pyspark")) == {}


# Outside fruits_lake, pyiceberg is for finding and reading tables only: every commit (the stream's
# appends, maintenance, the table part of an erasure) and its one retry policy live in fruits_lake.
READ_ONLY_PYICEBERG = {"pyiceberg.catalog", "pyiceberg.expressions", "pyiceberg.exceptions"}
COMMITTING_FOLDERS = (
    "streaming_job",
    "fruits_classifier",
    "fruits_privacy",
    "fruits_cli",
    "operations",
    "demo",
    "benchmarks",
)


def test_only_the_table_layer_commits_to_tables():
    # GIVEN every module outside fruits_lake WHEN its pyiceberg imports and names are read
    found = {}
    for folder in COMMITTING_FOLDERS:
        for path in sources(folder):
            text = path.read_text()
            writes = sorted(
                name
                for name in imported_modules(path)
                if name.startswith("pyiceberg") and name not in READ_ONLY_PYICEBERG
            )
            if "CommitFailedException" in text or "run_with_retry" in text:
                writes.append("a commit retry")
            if writes:
                found[str(path.relative_to(REPO_ROOT))] = writes
    # THEN none writes tables or retries commits itself
    assert found == {}


def test_the_classifier_room_sits_below_the_cli_demo_and_operations():
    # GIVEN every module of fruits_classifier/ (training and the app export, beside the stream)
    # WHEN its imports are read THEN it names the core, the lake and the stream only (the scoring
    # half it shares with the workers lives in streaming_job.scoring.classifier, which never imports it back)
    assert (
        offending("fruits_classifier", ("fruits_cli", "operations", "demo", "benchmarks", "fruits_ingest"))
        == {}
    )


# streaming_job/'s sub-rooms. The base modules at its top (config, uris, session) import no sub-room;
# featurizer, scoring, checkpoints and monitoring import the base and their own room only; query composes
# them all (each micro-batch: featurize, score, commit, report); the entry scripts at the top import anything.
JOB_BASE = ("config", "uris", "session")
JOB_LEAF_ROOMS = ("featurizer", "scoring", "checkpoints", "monitoring")
JOB_SUB_ROOMS = (*JOB_LEAF_ROOMS, "query")


def job_sub_rooms_imported(path: Path) -> set[str]:
    """The streaming_job sub-rooms a module imports (`streaming_job.<room>.<module>`)."""
    parts = (name.split(".") for name in imported_modules(path, with_names=True))
    return {p[1] for p in parts if len(p) > 2 and p[0] == "streaming_job" and p[1] in JOB_SUB_ROOMS}


def test_the_job_is_sub_rooms_plus_a_small_top():
    # GIVEN streaming_job/ WHEN its modules are listed THEN the top holds the base and the entry scripts
    # only, and every other module lives in one of the sub-rooms
    top = sorted(path.stem for path in (REPO_ROOT / "streaming_job").glob("*.py") if path.stem != "__init__")
    assert top == sorted((*JOB_BASE, "main", "fit_pca_main", "maintain_main", "worker_daemon"))
    folders = {path.parent.name for path in sources("streaming_job")} - {"streaming_job"}
    assert folders == set(JOB_SUB_ROOMS)


def test_the_job_base_imports_no_sub_room():
    found = {
        stem: sorted(job_sub_rooms_imported(REPO_ROOT / "streaming_job" / f"{stem}.py")) for stem in JOB_BASE
    }
    assert found == {stem: [] for stem in JOB_BASE}


@pytest.mark.parametrize("room", JOB_LEAF_ROOMS)
def test_a_leaf_sub_room_of_the_job_imports_no_other_sub_room(room):
    # GIVEN every module of one leaf sub-room WHEN its imports are read
    found = {
        str(path.relative_to(REPO_ROOT)): sorted(job_sub_rooms_imported(path) - {room})
        for path in sources(f"streaming_job/{room}")
    }
    # THEN it names only its own room among the sub-rooms (query alone composes them)
    assert {name: rooms for name, rooms in found.items() if rooms} == {}


def test_the_rule_sees_a_lazy_import(tmp_path: Path):
    # GIVEN a module importing the CLI inside a function WHEN its imports are read THEN it is found
    module = tmp_path / "lazy.py"
    module.write_text("def run():\n    from fruits_cli.main import main\n    return main\n")
    assert imported_modules(module) == {"fruits_cli.main"}


# Every first-party module by dotted name (lambdas/ingest is its own root: the Lambda's code).
PACKAGE_ROOTS = (
    ("", ("fruits_core", "fruits_lake", "fruits_privacy", "streaming_job", "fruits_cli", "operations")),
    ("", ("demo", "benchmarks")),
    ("lambdas/ingest", ("fruits_ingest",)),
)


def first_party_modules() -> dict[str, Path]:
    modules = {}
    for root, packages in PACKAGE_ROOTS:
        base = REPO_ROOT / root if root else REPO_ROOT
        for package in packages:
            for path in sorted((base / package).rglob("*.py")):
                parts = path.relative_to(base).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                modules[name] = path
    return modules


def import_edges(path: Path, modules: dict[str, Path]) -> set[str]:
    """The first-party modules a module imports, lazy ones included."""
    found = imported_modules(path, with_names=True)
    # A package's __init__ is no edge: `from pkg import mod` already counts as `pkg.mod`.
    return {name for name in found if name in modules and modules[name].name != "__init__.py"}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in index:
                visit(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return circles


def test_no_module_imports_itself_back_through_others():
    # GIVEN every first-party module's imports, lazy ones included
    modules = first_party_modules()
    graph = {name: import_edges(path, modules) - {name} for name, path in modules.items()}
    # THEN no two modules reach each other (an import circle): shared names go to a module both import
    assert import_circles(graph) == []


def test_the_circle_check_finds_a_lazy_circle():
    # GIVEN a imports b at the top and b imports a inside a function THEN the two form a circle
    assert import_circles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []


def test_every_entry_script_has_its_own_name():
    # GIVEN the modules named like entry scripts (`*_main.py`): spark-submit runs them by file name
    names = [path.name for path in first_party_modules().values() if path.name.endswith("_main.py")]
    # THEN no two share a name (the maintenance step's upload must not be mistaken for the CLI's module)
    assert sorted(names) == sorted(set(names))
