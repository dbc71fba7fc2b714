"""One features table, one model: vectors of two PCA versions never share a table.

The features table records the model behind its vectors in its properties.
The stream starts only with that model, unless told `--new-model-table`: the
current table is then renamed `fruits.features_<its pca_version>` (kept,
queryable) and a new, empty `fruits.features` is created for the new model.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from fruits_core.errors import ConfigError
from fruits_lake.catalog import (
    FEATURES_TABLE,
    K_PROPERTY,
    MODEL_VERSION_PROPERTY,
    PCA_VERSION_PROPERTY,
    ensure_tables,
)

log = logging.getLogger(__name__)

NEW_MODEL_TABLE_FLAG = "--new-model-table"


@dataclass(frozen=True)
class TableModel:
    """The model a features table holds vectors of (or is to hold)."""

    model_version: str
    pca_version: str
    k: int

    def properties(self) -> dict[str, str]:
        return {
            PCA_VERSION_PROPERTY: self.pca_version,
            MODEL_VERSION_PROPERTY: self.model_version,
            K_PROPERTY: str(self.k),
        }


class Decision(StrEnum):
    ADOPT = "adopt"  # a table with no model yet: record this one
    KEEP = "keep"  # the table's model is the stream's
    SWITCH = "switch"  # rename the table, create a new one for the stream's model


def decide(recorded_pca_version: str | None, model: TableModel, new_model_table: bool) -> Decision:
    """What to do with the features table before the stream writes to it (ConfigError: refuse)."""
    if recorded_pca_version is None:
        return Decision.ADOPT
    if recorded_pca_version == model.pca_version:
        return Decision.KEEP
    if not new_model_table:
        archived = archived_table_name(recorded_pca_version)
        raise ConfigError(
            f"{FEATURES_TABLE} holds vectors of {recorded_pca_version}, the stream's model is "
            f"{model.pca_version} (k={model.k}): one table never mixes two. Restart with "
            f"{NEW_MODEL_TABLE_FLAG} to keep the current table as {archived} and start a new "
            f"{FEATURES_TABLE}, or point --featurizer/--pca at the table's model"
        )
    return Decision.SWITCH


def archived_table_name(pca_version: str) -> str:
    """`fruits.features_<pca_version>`, in the characters Glue and Athena accept unquoted."""
    return f"{FEATURES_TABLE}_{re.sub(r'[^a-z0-9_]', '_', pca_version.lower())}"


def features_table_for(catalog: Catalog, model: TableModel, new_model_table: bool) -> tuple[Table, Table]:
    """(features, errors) with the features table holding `model`'s vectors only."""
    features, errors = ensure_tables(catalog)
    recorded = features.properties.get(PCA_VERSION_PROPERTY)
    decision = decide(recorded, model, new_model_table)
    if decision is Decision.SWITCH:
        archived = archived_table_name(recorded)
        if catalog.table_exists(archived):
            raise ConfigError(
                f"cannot keep {FEATURES_TABLE} as {archived}: that table exists already (rename or "
                f"drop it first)"
            )
        catalog.rename_table(FEATURES_TABLE, archived)
        log.warning(
            "model change: %s kept as %s, new %s for %s", FEATURES_TABLE, archived, FEATURES_TABLE, model
        )
        features, errors = ensure_tables(catalog)
    if decision is not Decision.KEEP:
        with features.transaction() as transaction:
            transaction.set_properties(model.properties())
    return features, errors
