"""Retention on every lake prefix and the privacy operator role, read from template.yaml.

The prefix list comes from fruits_core.contracts (never copied here): a prefix added to the
lake without a lifecycle rule, or a live-table prefix given an age expiry, fails these tests.
"""

from __future__ import annotations

import fnmatch
import re

import pytest
from cfn_template import (
    INGEST_TEMPLATE,
    as_list,
    function_properties,
    load_template,
    role_statements,
    sub_text,
)

from fruits_core import contracts
from fruits_lake.catalog import ERRORS_TABLE, FEATURES_TABLE
from fruits_lake.table_versions import archived_table_name


@pytest.fixture(scope="module")
def template():
    return load_template(INGEST_TEMPLATE)


def lake_rules(template) -> dict[str, dict]:
    rules = template["Resources"]["LakeBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    by_prefix: dict[str, dict] = {}
    for rule in rules:
        prefix = rule.get("Prefix", rule.get("Filter", {}).get("Prefix"))
        if prefix is not None:
            assert prefix not in by_prefix, f"two rules for {prefix}"
            by_prefix[prefix] = rule
    return by_prefix


def test_contracts_list_every_top_level_lake_prefix():
    # GIVEN every *_PREFIX constant of the contracts THEN each top-level lake prefix is in LAKE_PREFIXES
    constants = {
        value
        for name, value in vars(contracts).items()
        if name.endswith("_PREFIX") and isinstance(value, str) and value.count("/") == 1
    }
    assert constants - {contracts.UPLOADS_PREFIX} == set(contracts.LAKE_PREFIXES)
    assert set(contracts.LIVE_STATE_PREFIXES) <= set(contracts.LAKE_PREFIXES)


@pytest.mark.parametrize("prefix", contracts.LAKE_PREFIXES)
def test_every_lake_prefix_has_an_enabled_lifecycle_rule_with_configurable_days(template, prefix):
    rules = lake_rules(template)
    assert prefix in rules, f"no lifecycle rule for the lake prefix {prefix}"
    rule = rules[prefix]
    assert rule["Status"] == "Enabled"
    if prefix in contracts.LIVE_STATE_PREFIXES:
        # THEN live table/checkpoint/model files never expire by age: superseded versions only
        assert "ExpirationInDays" not in rule and "ExpirationDate" not in rule, prefix
        days = rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] == 1
    else:
        days = rule["ExpirationInDays"]
    # AND the number of days is a template parameter with a default
    assert set(days) == {"Ref"}, f"{prefix}: days must be a parameter"
    parameter = template["Parameters"][days["Ref"]]
    assert parameter["Type"] == "Number" and parameter["Default"] >= 1


def test_tombstones_live_exactly_as_long_as_the_ingest_refuses_uploads(template):
    rule = lake_rules(template)[contracts.TOMBSTONES_PREFIX]
    variables = function_properties(template, "IngestFunction")["Environment"]["Variables"]
    assert rule["ExpirationInDays"] == variables["ERASURE_GRACE_DAYS"] == {"Ref": "ErasureGraceDays"}


def _object_grants(statements) -> dict[str, set[str]]:
    grants: dict[str, set[str]] = {}
    for statement in statements:
        for resource in as_list(statement["Resource"]):
            if not (isinstance(resource, dict) and "Fn::Sub" in resource):
                continue
            match = re.fullmatch(r"\$\{LakeBucket\.Arn\}/(?P<prefix>[a-z-]+/)\*", sub_text(resource))
            if match:
                for action in as_list(statement["Action"]):
                    grants.setdefault(action, set()).add(match["prefix"])
    return grants


def test_privacy_operator_role_is_least_privilege(template):
    statements = role_statements(template, "PrivacyOperatorRole")
    assert all(statement["Effect"] == "Allow" for statement in statements)
    grants = _object_grants(statements)
    erasable = {
        contracts.CLEAN_PREFIX,
        contracts.MANIFESTS_PREFIX,
        contracts.ARCHIVE_PREFIX,
        contracts.QUARANTINE_PREFIX,
        contracts.FEATURES_PREFIX,
        contracts.ERRORS_PREFIX,
    }
    # THEN it reads every lake prefix (export, audit-pii), deletes only the subject's kinds of data
    assert grants["s3:GetObject"] == grants["s3:GetObjectVersion"] == set(contracts.LAKE_PREFIXES)
    assert grants["s3:DeleteObject"] == grants["s3:DeleteObjectVersion"] == erasable
    # AND writes only table files, tombstones, audit records and the batch manifest objects it rewrites
    # without the subject's lines (live and archived)
    assert grants["s3:PutObject"] == {
        contracts.FEATURES_PREFIX,
        contracts.ERRORS_PREFIX,
        contracts.TOMBSTONES_PREFIX,
        contracts.AUDIT_PREFIX,
        contracts.MANIFESTS_PREFIX,
    }
    rewrite = next(statement for statement in statements if statement.get("Sid") == "RewriteSharedManifests")
    assert sub_text(as_list(rewrite["Resource"])[1]) == "${LakeBucket.Arn}/archive/manifests/*"
    by_action = {action: s for s in statements for action in as_list(s["Action"])}
    # AND reads every version of the pseudonym key, and nothing else from SSM
    assert [a for a in by_action if a.startswith("ssm:")] == ["ssm:GetParameterHistory"]
    assert sub_text(by_action["ssm:GetParameterHistory"]["Resource"]).endswith(
        ":parameter${PseudonymKeyParameterName}"
    )
    assert by_action["kms:Decrypt"]["Resource"] == {"Fn::GetAtt": ["LakeKey", "Arn"]}
    # AND reaches Glue only in the stack's one lake database (LakeDatabase, as the EMR stack does)
    glue_arns = {
        sub_text(r)
        for s in statements
        if as_list(s["Action"])[0].startswith("glue:")
        for r in as_list(s["Resource"])
    }
    prefix = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:"
    assert {arn for arn in glue_arns if ":table/" in arn or ":database/" in arn} == {
        f"{prefix}database/${{LakeDatabase}}",
        f"{prefix}table/${{LakeDatabase}}/*",  # GetTables: an erasure lists every table
        *(f"{prefix}table/${{LakeDatabase}}/{name}" for name in ("features", "features_*", "errors")),
    }
    # AND updates only the tables that hold subject rows: both tables and every archived features table
    updated = [sub_text(r) for r in as_list(by_action["glue:UpdateTable"]["Resource"])]
    patterns = [arn.rsplit("/", 1)[1] for arn in updated if ":table/" in arn]
    tables = [FEATURES_TABLE, ERRORS_TABLE, archived_table_name("pca-v2:3f9a.k64")]
    for table in tables:
        assert any(fnmatch.fnmatchcase(table.split(".", 1)[1], pattern) for pattern in patterns), table
    assert not any(fnmatch.fnmatchcase("quarantine", pattern) for pattern in patterns)
    # AND only a person with MFA can assume it
    trust = template["Resources"]["PrivacyOperatorRole"]["Properties"]["AssumeRolePolicyDocument"]
    [statement] = trust["Statement"]
    assert statement["Condition"] == {"Bool": {"aws:MultiFactorAuthPresent": "true"}}


INGEST_WRITTEN_PREFIXES = (contracts.CLEAN_PREFIX, contracts.MANIFESTS_PREFIX, contracts.QUARANTINE_PREFIX)


def test_no_other_ingest_stack_role_may_delete_lake_objects(template):
    deletes = {"s3:DeleteObject", "s3:DeleteObjectVersion"}
    for role_name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::IAM::Role" or role_name == "PrivacyOperatorRole":
            continue
        for statement in role_statements(template, role_name):
            if not set(as_list(statement["Action"])) & deletes:
                continue
            # only the ingest function: the raw uploads it has processed (uploads bucket), and in the
            # lake only what it writes itself (an erased subject's leftovers of an interrupted try),
            # never a table file, a tombstone, an audit record or the archive
            assert role_name == "IngestFunctionRole", role_name
            resources = [sub_text(r) for r in as_list(statement["Resource"])]
            assert resources in (
                ["${UploadsBucket.Arn}/uploads/*"],
                [f"${{LakeBucket.Arn}}/{prefix}*" for prefix in INGEST_WRITTEN_PREFIXES],
            ), resources
            if resources[0].startswith("${LakeBucket"):
                assert as_list(statement["Action"]) == ["s3:DeleteObjectVersion"]
