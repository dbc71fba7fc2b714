"""The featurizing width of a micro-batch, from the cores the application holds at that moment."""

from __future__ import annotations

import pytest

from streaming_job.query.parallelism import DYNAMIC_ALLOCATION_WAVES, coalesce_width, current_coalesce_width


@pytest.mark.parametrize(
    ("total_cores", "task_cpus", "dynamic", "expected"),
    [
        (2, 1, False, 2),  # local[2]: one task per core
        (16, 1, False, 16),
        (16, 4, False, 4),  # spark.task.cpus=4: a slot is 4 cores
        (3, 2, False, 1),  # a partial slot does not count
        (1, 4, False, 1),  # never 0 tasks
        (16, 1, True, 16 * DYNAMIC_ALLOCATION_WAVES),  # waiting tasks make dynamic allocation scale out
    ],
)
def test_width_is_one_task_per_slot_and_waves_under_dynamic_allocation(
    total_cores, task_cpus, dynamic, expected
):
    assert coalesce_width(total_cores, task_cpus, dynamic) == expected


def test_width_follows_the_cores_as_executors_come_and_go():
    # GIVEN an application that scales from 2 to 3 executors of 4 cores, then back to 1
    # WHEN the width is computed before each batch THEN it follows the cores of that moment
    assert [coalesce_width(cores, 1, False) for cores in (8, 12, 4)] == [8, 12, 4]


def test_a_task_cpus_below_one_is_refused():
    with pytest.raises(ValueError, match=r"spark\.task\.cpus"):
        coalesce_width(8, 0, False)


class FakeConf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.values.get(key, default)


class ScalingContext:
    """A SparkContext's two reads: defaultParallelism (re-evaluated by Spark each time) and the conf."""

    def __init__(self, cores: list[int], conf: dict[str, str]) -> None:
        self._cores = iter(cores)
        self._conf = FakeConf(conf)

    @property
    def defaultParallelism(self) -> int:
        return next(self._cores)

    def getConf(self) -> FakeConf:
        return self._conf


def test_current_width_rereads_the_cores_at_every_call():
    # GIVEN a context whose cores grow between two batches, with spark.task.cpus=2 and dynamic allocation
    context = ScalingContext([4, 12], {"spark.task.cpus": "2", "spark.dynamicAllocation.enabled": "true"})
    # WHEN the width is asked twice THEN each answer uses the cores of that moment
    assert current_coalesce_width(context) == 2 * DYNAMIC_ALLOCATION_WAVES
    assert current_coalesce_width(context) == 6 * DYNAMIC_ALLOCATION_WAVES


@pytest.mark.spark
def test_current_width_of_a_local_session_is_its_cores(spark):
    # GIVEN the shared local session (fixed size, no dynamic allocation)
    # THEN the width is its default parallelism: one task per core
    assert current_coalesce_width(spark.sparkContext) == spark.sparkContext.defaultParallelism
