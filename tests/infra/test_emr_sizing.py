"""Executor sizing: the formula of operations/emr_sizing.py, and the template carrying its numbers."""

from __future__ import annotations

import pytest

from operations.emr_sizing import (
    MEASURED_WORKER_PEAK_MIB,
    ExecutorSettings,
    executor_settings,
    executors_per_node,
)


def test_overhead_holds_every_python_worker_at_its_measured_peak_plus_the_jvm_margin():
    # GIVEN a measured worker peak of 200 MiB and executors of 4 one-core task slots
    settings = executor_settings(worker_peak_mib=200, cores=4, task_cpus=1)
    # THEN the heap is 1 GiB per core, and the overhead 4 x 200 x 1.5 + 64 + max(384, 409.6) = 1673.6,
    # rounded up to YARN's 128 MiB steps
    assert settings == ExecutorSettings(cores=4, heap_mib=4096, overhead_mib=1792)
    assert settings.container_mib == 5888


def test_fewer_workers_when_a_task_takes_several_cores():
    # GIVEN spark.task.cpus=2: 2 workers in a 4-core executor instead of 4
    # THEN 2 x 200 x 1.5 + 64 + 409.6 = 1073.6 -> 1152
    assert executor_settings(worker_peak_mib=200, cores=4, task_cpus=2).overhead_mib == 1152


def test_a_small_heap_still_gets_spark_s_minimum_jvm_overhead():
    # GIVEN a 1-core executor: 10 % of 1 GiB is below Spark's 384 MiB floor
    # THEN 1 x 100 x 1.5 + 64 + 384 = 598 -> 640
    assert executor_settings(worker_peak_mib=100, cores=1).overhead_mib == 640


def test_cores_must_be_a_multiple_of_the_task_cpus():
    with pytest.raises(ValueError, match="multiple"):
        executor_settings(cores=3, task_cpus=2)


def test_a_node_holds_as_many_executors_as_its_cores_and_yarn_memory_allow():
    settings = ExecutorSettings(cores=4, heap_mib=4096, overhead_mib=1280)
    assert executors_per_node(settings, node_vcpus=8, node_yarn_mib=24576) == 2  # cores bound
    assert executors_per_node(settings, node_vcpus=8, node_yarn_mib=8192) == 1  # memory bound
    assert executors_per_node(settings, node_vcpus=16, node_yarn_mib=65536) == 4


def test_the_emr_template_carries_the_sizing_of_the_measured_worker(emr_template):
    # GIVEN the cluster's spark-defaults
    cluster = emr_template["Resources"]["Cluster"]["Properties"]
    defaults = next(
        c["ConfigurationProperties"]
        for c in cluster["Configurations"]
        if c["Classification"] == "spark-defaults"
    )
    # THEN executor cores, heap and overhead are the formula's for the measured peak
    assert executor_settings(MEASURED_WORKER_PEAK_MIB).spark_conf().items() <= defaults.items()
    # AND spark.default.parallelism is unset, or the per-batch width would be frozen again
    assert "spark.default.parallelism" not in defaults
    # AND the Python memory is not capped with spark.executor.pyspark.memory (an address-space limit)
    assert "spark.executor.pyspark.memory" not in defaults
