"""The lake's Glue catalog and its daily maintenance in the templates, cross-checked with the code.

The Glue database lives in the ingest stack beside the bucket; the EMR stack grants its role
the tables of that database only, hands the database name to every step, and schedules
`fruits lake maintain` as an EMR step running the uploaded maintain_main.py.
"""

from __future__ import annotations

import argparse
import json
import re

from cfn_template import REPO_ROOT, role_statements, sub_text

from fruits_lake.catalog import GLUE_DATABASE_ENV, GLUE_DATABASE_PATTERN
from fruits_lake.maintain_cli import add_maintain_arguments, options_from_args
from operations import deploy as stream_deploy
from operations.env_archive import env_spec
from operations.job_package import build_job_package

DATABASE_IMPORT = {"Fn::ImportValue": {"Fn::Sub": "${IngestStackName}-LakeDatabaseName"}}
GLUE_TABLE_ACTIONS = {
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:GetTables",
    "glue:CreateTable",
    "glue:UpdateTable",
}


def test_the_lake_database_is_one_per_stage_retained_with_the_bucket_and_exported(ingest_template):
    database = ingest_template["Resources"]["LakeDatabase"]
    # GIVEN the Glue database of the ingest stack THEN it is kept when the stack goes, like the bucket
    assert database["Type"] == "AWS::Glue::Database"
    assert database["DeletionPolicy"] == database["UpdateReplacePolicy"] == "Retain"
    # AND its name, for every stage, is one FRUITS_GLUE_DATABASE accepts
    name = sub_text(database["Properties"]["DatabaseInput"]["Name"])
    for stage in ingest_template["Parameters"]["Stage"]["AllowedValues"]:
        assert re.fullmatch(GLUE_DATABASE_PATTERN, name.replace("${Stage}", stage)), stage
    # AND the stack exports it for the EMR stack
    output = ingest_template["Outputs"]["LakeDatabaseName"]
    assert output["Value"] == {"Ref": "LakeDatabase"}
    assert sub_text(output["Export"]["Name"]) == "${AWS::StackName}-LakeDatabaseName"


def test_the_emr_role_reaches_only_the_lake_database_and_its_tables_in_glue(emr_template):
    statements = role_statements(emr_template, "InstanceRole")
    glue = [s for s in statements if any(a.startswith("glue:") for a in s["Action"])]
    # GIVEN the EMR instance role THEN one statement grants Glue, with exactly the catalog calls
    # pyiceberg's GlueCatalog makes to load, create and commit tables (nothing deletes)
    (statement,) = glue
    assert set(statement["Action"]) == GLUE_TABLE_ACTIONS
    # AND only on the account's catalog, the lake database and that database's tables
    catalog, database, tables = statement["Resource"]
    assert sub_text(catalog) == "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}:catalog"
    prefix = "arn:${AWS::Partition}:glue:${AWS::Region}:${AWS::AccountId}"
    assert database["Fn::Sub"] == [
        f"{prefix}:database/${{LakeDatabaseName}}",
        {"LakeDatabaseName": DATABASE_IMPORT},
    ]
    assert tables["Fn::Sub"] == [
        f"{prefix}:table/${{LakeDatabaseName}}/*",
        {"LakeDatabaseName": DATABASE_IMPORT},
    ]


def test_every_step_driver_gets_the_glue_database(emr_template):
    configurations = {
        c["Classification"]: c for c in emr_template["Resources"]["Cluster"]["Properties"]["Configurations"]
    }
    # GIVEN the cluster's configuration THEN a step's driver (the YARN application master) gets it
    defaults = configurations["spark-defaults"]["ConfigurationProperties"]
    assert defaults[f"spark.yarn.appMasterEnv.{GLUE_DATABASE_ENV}"] == DATABASE_IMPORT
    # AND that is every driver: the steps run in cluster deploy mode (the packed environment's
    # interpreter exists only in YARN containers), so no client-mode export is needed
    step = stream_deploy.spark_submit_step("any", "s3://b/code/v/job.zip", "s3://b/env.tar.gz", "e.py", [])
    args = step["HadoopJarStep"]["Args"]
    assert args[args.index("--deploy-mode") + 1] == "cluster"
    assert "spark-env" not in configurations


def _scheduled_step(emr_template) -> tuple[dict, dict]:
    schedule = emr_template["Resources"]["LakeMaintenanceSchedule"]["Properties"]
    text, variables = schedule["Target"]["Input"]["Fn::Sub"]
    assert variables == {
        "LakeBucketName": {"Fn::ImportValue": {"Fn::Sub": "${IngestStackName}-LakeBucketName"}}
    }
    return schedule, json.loads(text)


def test_maintenance_is_scheduled_daily_as_an_emr_step_of_the_uploaded_code(emr_template):
    schedule, request = _scheduled_step(emr_template)
    parameters = emr_template["Parameters"]
    # GIVEN the schedule THEN EventBridge Scheduler calls EMR's AddJobFlowSteps itself, daily, in UTC
    assert (
        sub_text(schedule["Target"]["Arn"]) == "arn:${AWS::Partition}:scheduler:::aws-sdk:emr:addJobFlowSteps"
    )
    assert schedule["ScheduleExpression"] == {"Ref": "MaintenanceSchedule"}
    assert re.fullmatch(r"cron\(\d+ \d+ \* \* \? \*\)", parameters["MaintenanceSchedule"]["Default"])
    assert schedule["ScheduleExpressionTimezone"] == "UTC" and schedule["State"] == "ENABLED"
    assert schedule["Target"]["RoleArn"] == {"Fn::GetAtt": ["MaintenanceSchedulerRole", "Arn"]}
    # AND the request adds one step to this stack's cluster, which keeps the cluster up if it fails
    assert request["JobFlowId"] == "${Cluster}"
    (step,) = request["Steps"]
    assert step["Name"] == "fruits-lake-maintain-${Stage}" and step["ActionOnFailure"] == "CONTINUE"
    # AND the step is the one operations/deploy/steps.py builds for the uploaded code and environment
    # (cluster deploy mode on the packed environment, like the stream's), with the stack's values
    placeholders = stream_deploy.Target(lake=stream_deploy.Lake(bucket="${LakeBucketName}"), stage="${Stage}")
    assert step == stream_deploy.maintain_step(
        placeholders, "${MaintenanceCodeVersion}", "${MaintenanceEnvVersion}"
    )
    # AND its flags are ones maintain_main.py accepts (everything else keeps the command's defaults)
    args = step["HadoopJarStep"]["Args"]
    script = args.index(
        placeholders.code_uri("${MaintenanceCodeVersion}", stream_deploy.MAINTAIN_SCRIPT_NAME)
    )
    parser = argparse.ArgumentParser()
    add_maintain_arguments(parser)
    script_args = [
        arg.replace("${LakeBucketName}", "fruits-dev-lake-1-eu-west-3") for arg in args[script + 1 :]
    ]
    assert script_args == ["--lake", "s3://fruits-dev-lake-1-eu-west-3"]
    options_from_args(parser.parse_args(script_args))
    # AND the version parameters accept exactly what the upload names its prefixes
    assert re.fullmatch(parameters["MaintenanceCodeVersion"]["AllowedPattern"], build_job_package().version)
    env_version = env_spec(REPO_ROOT / "pyproject.toml").version
    assert re.fullmatch(parameters["MaintenanceEnvVersion"]["AllowedPattern"], env_version)


def test_the_scheduler_role_can_only_add_steps_to_the_stream_cluster(emr_template):
    role = emr_template["Resources"]["MaintenanceSchedulerRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    # GIVEN the scheduler's role THEN only EventBridge Scheduler of this account assumes it
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    # AND it may only add steps, to this cluster
    (statement,) = role_statements(emr_template, "MaintenanceSchedulerRole")
    assert statement["Action"] == "elasticmapreduce:AddJobFlowSteps"
    assert sub_text(statement["Resource"]) == (
        "arn:${AWS::Partition}:elasticmapreduce:${AWS::Region}:${AWS::AccountId}:cluster/${Cluster}"
    )
