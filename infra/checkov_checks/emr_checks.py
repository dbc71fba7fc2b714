"""Checkov custom checks for the EMR resources, which checkov's own CloudFormation checks do not cover.

Loaded with `checkov --external-checks-dir infra/checkov_checks` (tests/infra/test_templates.py).
Each check reads the resource as written in the template; a value given by an intrinsic function
(Ref, ImportValue...) counts as set.
"""

from __future__ import annotations

from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

EMR_SECURITY_CONFIGURATION = "AWS::EMR::SecurityConfiguration"
EMR_CLUSTER = "AWS::EMR::Cluster"
# Logical id of the custom resource that turns EMR block public access on.
BLOCK_PUBLIC_ACCESS_RESOURCE_NAME = "EmrBlockPublicAccess"


def _path(conf: dict[str, Any], *keys: str) -> Any:
    value: Any = conf
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _result(ok: bool) -> CheckResult:
    return CheckResult.PASSED if ok else CheckResult.FAILED


class EmrEncryptsAtRestAndInTransit(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="EMR security configuration encrypts S3 and local disks + EBS (KMS), and transit",
            id="CKV_FRUITS_EMR_1",
            categories=[CheckCategories.ENCRYPTION],
            supported_resources=[EMR_SECURITY_CONFIGURATION],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        encryption = _path(conf, "Properties", "SecurityConfiguration", "EncryptionConfiguration") or {}
        at_rest = _path(encryption, "AtRestEncryptionConfiguration") or {}
        local_disk = _path(at_rest, "LocalDiskEncryptionConfiguration") or {}
        return _result(
            _is_true(encryption.get("EnableAtRestEncryption"))
            and _is_true(encryption.get("EnableInTransitEncryption"))
            and _path(at_rest, "S3EncryptionConfiguration", "EncryptionMode") in ("SSE-KMS", "CSE-KMS")
            and local_disk.get("EncryptionKeyProviderType") == "AwsKms"
            and _is_true(local_disk.get("EnableEbsEncryption"))
        )


class EmrRequiresImdsV2(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="EMR security configuration enforces IMDSv2 with a hop limit of 1",
            id="CKV_FRUITS_EMR_2",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=[EMR_SECURITY_CONFIGURATION],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        imds = (
            _path(conf, "Properties", "SecurityConfiguration", "InstanceMetadataServiceConfiguration") or {}
        )
        return _result(
            str(imds.get("MinimumInstanceMetadataServiceVersion")) == "2"
            and str(imds.get("HttpPutResponseHopLimit")) == "1"
        )


class EmrClusterIsPrivateAndUsesTheSecurityConfiguration(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="EMR cluster: security configuration, encrypted logs, not visible to all users",
            id="CKV_FRUITS_EMR_3",
            categories=[CheckCategories.GENERAL_SECURITY],
            supported_resources=[EMR_CLUSTER],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = conf.get("Properties") or {}
        logs_encrypted = "LogUri" not in properties or bool(properties.get("LogEncryptionKmsKeyId"))
        visible = properties.get("VisibleToAllUsers", True)  # EMR's default is true
        return _result(
            bool(properties.get("SecurityConfiguration")) and logs_encrypted and not _is_true(visible)
        )


class EmrBlockPublicAccessIsManaged(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="EMR cluster is created after the template enforces EMR block public access (no open port)",
            id="CKV_FRUITS_EMR_4",
            categories=[CheckCategories.NETWORKING],
            supported_resources=[EMR_CLUSTER],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        """The cluster references the block-public-access custom resource, so it is created after it."""
        tags = _path(conf, "Properties", "Tags") or []
        references = [tag.get("Value") for tag in tags if isinstance(tag, dict)]
        return _result({"Ref": BLOCK_PUBLIC_ACCESS_RESOURCE_NAME} in references)


checks = (
    EmrEncryptsAtRestAndInTransit(),
    EmrRequiresImdsV2(),
    EmrClusterIsPrivateAndUsesTheSecurityConfiguration(),
    EmrBlockPublicAccessIsManaged(),
)
