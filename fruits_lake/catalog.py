"""Open the lake's Iceberg catalog and create its two tables.

A local lake keeps its catalog beside the data (SQLite under `<lake>/catalog/`),
so a lake directory is self-contained; an `s3://` lake uses the AWS Glue
catalog, which Athena, EMR and the CLI all see. Either way the tables live at
explicit locations under the lake's `features/` and `errors/` prefixes, so its
key layout, IAM prefixes and lifecycle rules stay what they were.

Each features table gets a folder of its own, `<lake>/features/features-<uuid>/`:
a model change renames the current table and creates a new one (one table
never holds two k), and no table's folder may contain another's, or removing
one table's orphan files would delete the other's data. Readers find a
table's folder through the catalog (`Table.location()`), never by guessing.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from pyiceberg.catalog import Catalog
from pyiceberg.catalog.glue import GlueCatalog
from pyiceberg.exceptions import TableAlreadyExistsError
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import (
    UnsupportedUriError,
    file_uri,
    is_s3,
    join_uri,
    local_path,
    validate_lake_uri,
)
from fruits_lake.migrations import migrate
from fruits_lake.schemas import ERRORS_SCHEMA, ERRORS_SPEC, FEATURES_SCHEMA, FEATURES_SPEC

NAMESPACE = "fruits"
FEATURES_TABLE = f"{NAMESPACE}.features"
ERRORS_TABLE = f"{NAMESPACE}.errors"
CATALOG_NAME = "fruits"
CATALOG_FILE = "iceberg.db"
# The catalog property holding the lake root: where ensure_tables puts the tables.
LAKE_PROPERTY = "warehouse"
GLUE_DATABASE_ENV = "FRUITS_GLUE_DATABASE"
# Glue database names: lowercase letters, digits and underscores (what Athena can query unquoted).
GLUE_DATABASE_PATTERN = r"^[a-z0-9_]{1,255}$"

# Snapshot summary keys of a stream commit: which query and micro-batch wrote it (exactly once).
QUERY_ID_PROPERTY = "fruits.query-id"
BATCH_ID_PROPERTY = "fruits.batch-id"
# In a stream commit's summary and in the features table's properties: the model behind the vectors.
PCA_VERSION_PROPERTY = "fruits.pca-version"
MODEL_VERSION_PROPERTY = "fruits.model-version"
K_PROPERTY = "fruits.k"
# In the summary of an erasure's fencing snapshot (no rows): commits planned before it must start over.
ERASURE_FENCE_PROPERTY = "fruits.erasure-fence"
# No column statistics for the pseudonym: a manifest's lower/upper bounds would keep its first
# 16 characters after the subject's rows are erased (docs/gdpr.md).
SUBJECT_METRICS_PROPERTY = "write.metadata.metrics.column.subject_id"
# Every commit writes a new metadata file: keep the last 100, delete older ones as part of the commit
# (the stream commits once per trigger; snapshots themselves are expired by maintenance).
TABLE_PROPERTIES = {
    "write.metadata.delete-after-commit.enabled": "true",
    "write.metadata.previous-versions-max": "100",
}
FEATURES_TABLE_PROPERTIES = {**TABLE_PROPERTIES, SUBJECT_METRICS_PROPERTY: "none"}


def open_catalog(lake_uri: str) -> Catalog:
    """The catalog of the lake at `lake_uri` (a path, `file://` URI or `s3://bucket[/prefix]`)."""
    if is_s3(lake_uri):
        return _GlueLakeCatalog(glue_database(), lake_uri.rstrip("/"))
    # Imported here: SQLAlchemy is a local-lake dependency only, not installed on EMR (Glue there).
    from pyiceberg.catalog.sql import SqlCatalog

    root = local_lake_root(lake_uri)
    catalog_dir = root / contracts.CATALOG_PREFIX
    catalog_dir.mkdir(parents=True, exist_ok=True)
    return SqlCatalog(
        CATALOG_NAME,
        # The raw spelling (fruits_core.lake_uris): pyiceberg takes a location verbatim.
        **{"uri": f"sqlite:///{catalog_dir / CATALOG_FILE}", LAKE_PROPERTY: file_uri(root)},
    )


def local_lake_root(lake_uri: str) -> Path:
    """The absolute directory of a local lake given as a path or a `file://` URI."""
    try:
        if lake_uri.startswith("file:"):
            lake_uri = validate_lake_uri(lake_uri, "lake")  # the raw spelling, also of an encoded one
        return local_path(lake_uri).resolve()
    except UnsupportedUriError as error:
        raise ConfigError(
            f"a lake is a path, file:///absolute/path or s3://bucket[/prefix], got {lake_uri!r}"
        ) from error


def glue_database() -> str:
    """The Glue database of an s3:// lake's tables, from FRUITS_GLUE_DATABASE (one per stage)."""
    name = os.environ.get(GLUE_DATABASE_ENV, "")
    if not re.fullmatch(GLUE_DATABASE_PATTERN, name):
        raise ConfigError(
            f"{GLUE_DATABASE_ENV} must name the stage's Glue database (lowercase letters, digits, "
            f"underscores), got {name!r}"
        )
    return name


def ensure_tables(catalog: Catalog) -> tuple[Table, Table]:
    """Create the namespace and both tables when missing (idempotent); return (features, errors)."""
    lake = catalog.properties[LAKE_PROPERTY]
    catalog.create_namespace_if_not_exists(NAMESPACE)
    features = create_table_if_missing(
        catalog,
        FEATURES_TABLE,
        FEATURES_SCHEMA,
        FEATURES_SPEC,
        new_features_location(lake),
        FEATURES_TABLE_PROPERTIES,
    )
    # A table an earlier version created gains the columns added since (before any append).
    features = migrate(features, FEATURES_SCHEMA)
    errors = create_table_if_missing(
        catalog, ERRORS_TABLE, ERRORS_SCHEMA, ERRORS_SPEC, join_uri(lake, contracts.ERRORS_PREFIX)
    )
    errors = migrate(errors, ERRORS_SCHEMA)
    return without_subject_statistics(features), errors


def without_subject_statistics(table: Table) -> Table:
    """Set the no-statistics rule for subject_id on a table created before it (one commit, once)."""
    if table.properties.get(SUBJECT_METRICS_PROPERTY) != "none":
        with table.transaction() as transaction:
            transaction.set_properties({SUBJECT_METRICS_PROPERTY: "none"})
    return table


def new_features_location(lake_uri: str) -> str:
    """A fresh folder for a new features table, beside (never inside) the earlier ones."""
    return join_uri(lake_uri, contracts.FEATURES_PREFIX, f"features-{uuid.uuid4().hex}")


def create_table_if_missing(
    catalog: Catalog,
    identifier: str,
    schema: Schema,
    spec: PartitionSpec,
    location: str,
    properties: dict[str, str] = TABLE_PROPERTIES,
) -> Table:
    """Load the table, or create it at `location`.

    Checked first: pyiceberg's create_table_if_not_exists writes a metadata file before it finds
    the table exists, which would leave one orphan file per start.
    """
    if catalog.table_exists(identifier):
        return catalog.load_table(identifier)
    try:
        return catalog.create_table(
            identifier, schema=schema, location=location, partition_spec=spec, properties=properties
        )
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


class _GlueLakeCatalog(GlueCatalog):
    """Glue, with the `fruits` namespace mapped to the stage's database.

    Every caller names tables `fruits.<table>`; on AWS each stage has its own
    database (one account may hold several stages), chosen here only.
    """

    def __init__(self, database: str, lake_uri: str) -> None:
        super().__init__(CATALOG_NAME, **{LAKE_PROPERTY: lake_uri})
        self.database = database

    def identifier_to_database(self, identifier, err=ValueError) -> str:  # type: ignore[override]
        return self._database_of(Catalog.identifier_to_database(identifier, err))

    def identifier_to_database_and_table(self, identifier, err=ValueError) -> tuple[str, str]:  # type: ignore[override]
        namespace, table = Catalog.identifier_to_database_and_table(identifier, err)
        return self._database_of(namespace), table

    def _database_of(self, namespace: str) -> str:
        return self.database if namespace == NAMESPACE else namespace
