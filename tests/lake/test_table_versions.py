"""One features table, one model: the decision, and the switch on a real local catalog (no Spark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fruits_core.errors import ConfigError
from fruits_lake.catalog import FEATURES_TABLE, K_PROPERTY, PCA_VERSION_PROPERTY, open_catalog
from fruits_lake.table_versions import Decision, TableModel, archived_table_name, decide, features_table_for

OLD = TableModel("mobilenet_v2-int8-aaaa", "pca-k4-0123456789ab", 4)
NEW = TableModel("mobilenet_v2-int8-aaaa", "pca-k3-ba9876543210", 3)


@pytest.mark.parametrize(
    ("recorded", "flag", "expected"),
    [
        (None, False, Decision.ADOPT),
        (None, True, Decision.ADOPT),
        (OLD.pca_version, False, Decision.KEEP),
        (OLD.pca_version, True, Decision.KEEP),
        (NEW.pca_version, True, Decision.SWITCH),
    ],
)
def test_the_decision_follows_the_recorded_model_and_the_flag(recorded, flag, expected):
    assert decide(recorded, OLD, new_model_table=flag) is expected


def test_another_model_without_the_flag_is_refused_naming_both_versions_and_the_way_out():
    with pytest.raises(ConfigError) as refused:
        decide(OLD.pca_version, NEW, new_model_table=False)
    message = str(refused.value)
    assert OLD.pca_version in message and NEW.pca_version in message
    assert "--new-model-table" in message and archived_table_name(OLD.pca_version) in message


def test_an_archived_name_is_a_plain_glue_identifier():
    assert archived_table_name("pca-k4-0123456789AB") == "fruits.features_pca_k4_0123456789ab"


def test_the_switch_keeps_the_old_table_and_starts_an_empty_one_for_the_new_model(tmp_path: Path):
    catalog = open_catalog(str(tmp_path))
    # GIVEN a features table adopted by the old model
    old_features, _ = features_table_for(catalog, OLD, new_model_table=False)
    assert old_features.properties[PCA_VERSION_PROPERTY] == OLD.pca_version
    # WHEN the new model starts with the flag
    new_features, _ = features_table_for(catalog, NEW, new_model_table=True)
    # THEN fruits.features is new and empty, in another folder, and the old one is kept under its version
    archived = catalog.load_table(archived_table_name(OLD.pca_version))
    assert archived.properties[K_PROPERTY] == "4"
    assert catalog.load_table(FEATURES_TABLE).properties[K_PROPERTY] == "3"
    assert new_features.current_snapshot() is None
    assert new_features.location() != archived.location()
    assert not new_features.location().startswith(archived.location() + "/")
    # AND going back to the old model starts a third table; leaving it again would need the name
    # fruits.features_<old>, taken: refused, never overwritten
    features_table_for(catalog, OLD, new_model_table=True)
    assert catalog.load_table(archived_table_name(NEW.pca_version)).properties[K_PROPERTY] == "3"
    with pytest.raises(ConfigError, match="exists already"):
        features_table_for(catalog, NEW, new_model_table=True)
