"""Reading CloudFormation/SAM templates in tests: a tag-aware YAML loader and small accessors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INGEST_TEMPLATE = REPO_ROOT / "template.yaml"
EMR_TEMPLATE = REPO_ROOT / "infra" / "emr-cluster.yaml"
SERVERLESS_TEMPLATE = REPO_ROOT / "infra" / "emr-serverless.yaml"
BOOTSTRAP_SCRIPT = REPO_ROOT / "infra" / "bootstrap" / "check-python.sh"


class CloudFormationLoader(yaml.SafeLoader):
    """SafeLoader that turns the short-form tags (!Ref, !Sub, ...) into their long form."""


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CloudFormationLoader)  # noqa: S506 (SafeLoader subclass)


def sub_text(value: Any) -> str:
    """The template string of an Fn::Sub (short or list form), or a plain string as is."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else sub[0]
    raise AssertionError(f"expected a string or Fn::Sub, got {value!r}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def role_statements(template: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    """Every statement of a role's inline policies."""
    role = template["Resources"][role_name]
    assert role["Type"] == "AWS::IAM::Role"
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def function_properties(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A SAM function's properties as deployed: `Globals.Function` merged under its own, the way SAM
    does it (maps merge key by key, lists add up, the function's scalar wins)."""
    resource = template["Resources"][name]
    assert resource["Type"] == "AWS::Serverless::Function"
    return _sam_merge(template.get("Globals", {}).get("Function", {}), resource["Properties"])


def _sam_merge(shared: Any, own: Any) -> Any:
    if isinstance(shared, dict) and isinstance(own, dict):
        merged = dict(shared)
        for key, value in own.items():
            merged[key] = _sam_merge(shared[key], value) if key in shared else value
        return merged
    if isinstance(shared, list) and isinstance(own, list):
        return shared + own
    return own
