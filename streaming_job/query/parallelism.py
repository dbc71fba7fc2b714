"""How many featurizing tasks a micro-batch gets: the cores the application holds now.

Re-read before every micro-batch, not once at start: under dynamic allocation (EMR's default)
the executors, and so the cores, change while the stream runs.
"""

from __future__ import annotations

# Under dynamic allocation, Spark asks YARN for more executors only while tasks wait for a slot
# (and EMR managed scaling adds nodes only while YARN has pending containers). Two waves of
# tasks keep half of them waiting, so a backlog grows the cluster; one wave would pin it at its
# current size. A fixed-size application (local mode) gets one wave: no straggling second wave.
DYNAMIC_ALLOCATION_WAVES = 2


def coalesce_width(total_cores: int, task_cpus: int, dynamic_allocation: bool) -> int:
    """Tasks for a batch: one per slot (cores // spark.task.cpus), twice that under dynamic allocation."""
    if task_cpus < 1:
        raise ValueError(f"spark.task.cpus must be >= 1, got {task_cpus}")
    slots = max(1, total_cores // task_cpus)
    return slots * (DYNAMIC_ALLOCATION_WAVES if dynamic_allocation else 1)


def current_coalesce_width(spark_context) -> int:
    """coalesce_width for the executors registered now.

    `defaultParallelism` is the total cores of the registered executors (at least 2) each time it
    is read, unless spark.default.parallelism is set, which would freeze it: the EMR template
    leaves it unset (tests/infra).
    """
    conf = spark_context.getConf()
    return coalesce_width(
        total_cores=spark_context.defaultParallelism,
        task_cpus=int(conf.get("spark.task.cpus", "1")),
        dynamic_allocation=conf.get("spark.dynamicAllocation.enabled", "false").lower() == "true",
    )
