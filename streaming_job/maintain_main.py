"""The daily lake maintenance step on EMR: `fruits lake maintain` (fruits_lake) in a SparkSession.

Usage:
    spark-submit --deploy-mode cluster --archives <env>#environment ... \
        --py-files fruits_job.zip maintain_main.py --lake s3://bucket [options]

The options are those of `fruits lake maintain`. Every step runs in YARN cluster deploy mode (the
packed environment's interpreter exists only in the YARN containers), and there the application
master fails the application when the driver has not created a SparkContext within
spark.yarn.am.waitTime. The maintenance itself needs no Spark, and fruits_lake never imports it:
this entry opens the session.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # As in main.py: import the package from its parent, not this folder's modules as top-level ones.
    _HERE = Path(__file__).resolve().parent
    sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]
    sys.path.insert(0, str(_HERE.parent))


def main(argv: list[str] | None = None) -> int:
    from pyspark.sql import SparkSession

    from fruits_lake.maintain_cli import main as maintain

    spark = SparkSession.builder.getOrCreate()
    try:
        return maintain(argv)
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
