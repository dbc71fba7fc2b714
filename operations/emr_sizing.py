"""Executor memory and cores on EMR, from the measured peak of one Python worker (pure).

On YARN an executor's container is spark.executor.memory (the JVM heap) plus
spark.executor.memoryOverhead, and the Python workers live in the overhead: one worker
per task slot (spark.executor.cores / spark.task.cpus), each with its own LiteRT
interpreter and image reader (worker_cache). infra/emr-cluster.yaml carries the numbers
`executor_settings()` gives for MEASURED_WORKER_PEAK_MIB (tests/infra checks they agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# benchmarks/worker_memory.py (2 x 200 clean 2048-px images at 224 px, LiteRT, 1 core, 8 read
# threads): VmHWM of the worker after both passes. docs/operations.md quotes the run.
MEASURED_WORKER_PEAK_MIB = 134
# Half a 2xlarge node (8 vCPUs): two executors per node, so a spot reclaim or a lost executor costs
# half a node's tasks, and the JVM's own cost is shared by 4 task slots.
EXECUTOR_CORES = 4
TASK_CPUS = 1
# The JVM side of a task is small (the manifest scan, Arrow batches to and from the worker):
# 1 GiB of heap per core is Spark's usual floor and leaves room for the broadcast spec and PCA.
HEAP_MIB_PER_CORE = 1024
# Headroom on the measured peak: other images (a 2048 x 2048 square decodes 33 % larger than
# the 4:3 ones measured) and allocator fragmentation over weeks of worker reuse.
WORKER_PEAK_SAFETY = 1.5
# pyspark.daemon, which forks the workers (one per executor).
DAEMON_MIB = 64
# Spark's own default overhead for the JVM's off-heap memory: 10 % of the heap, at least 384 MiB.
JVM_OVERHEAD_FACTOR = 0.10
JVM_OVERHEAD_MIN_MIB = 384
# YARN grants memory in multiples of its minimum allocation (yarn.scheduler.minimum-allocation-mb).
ROUND_TO_MIB = 128


@dataclass(frozen=True)
class ExecutorSettings:
    cores: int
    heap_mib: int
    overhead_mib: int

    @property
    def container_mib(self) -> int:
        return self.heap_mib + self.overhead_mib

    def spark_conf(self) -> dict[str, str]:
        return {
            "spark.executor.cores": str(self.cores),
            "spark.executor.memory": f"{self.heap_mib}m",
            "spark.executor.memoryOverhead": f"{self.overhead_mib}m",
        }


def _round_up(mib: float) -> int:
    return int(math.ceil(mib / ROUND_TO_MIB) * ROUND_TO_MIB)


def executor_settings(
    worker_peak_mib: float = MEASURED_WORKER_PEAK_MIB, cores: int = EXECUTOR_CORES, task_cpus: int = TASK_CPUS
) -> ExecutorSettings:
    """heap = cores x HEAP_MIB_PER_CORE;
    overhead = workers x peak x WORKER_PEAK_SAFETY + DAEMON_MIB + max(384, 10 % of heap),
    with workers = cores // task_cpus; both rounded up to YARN's 128 MiB steps.
    """
    if cores < 1 or task_cpus < 1 or cores % task_cpus:
        raise ValueError(f"cores ({cores}) must be a positive multiple of spark.task.cpus ({task_cpus})")
    heap = cores * HEAP_MIB_PER_CORE
    workers = cores // task_cpus
    jvm_overhead = max(JVM_OVERHEAD_MIN_MIB, JVM_OVERHEAD_FACTOR * heap)
    overhead = workers * worker_peak_mib * WORKER_PEAK_SAFETY + DAEMON_MIB + jvm_overhead
    return ExecutorSettings(cores=cores, heap_mib=_round_up(heap), overhead_mib=_round_up(overhead))


def executors_per_node(settings: ExecutorSettings, node_vcpus: int, node_yarn_mib: int) -> int:
    """How many such executors a node holds: the smaller of its cores' and its YARN memory's count."""
    return min(node_vcpus // settings.cores, node_yarn_mib // settings.container_mib)
