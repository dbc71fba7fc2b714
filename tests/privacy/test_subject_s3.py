"""`fruits subject export|erase` on a versioned S3 lake (moto), after a pseudonym key rotation."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest

from fruits_cli.main import main
from fruits_core import contracts
from tests.privacy.subject_testkit import SUBJECTS

UPLOADS_BUCKET = "fruits-test-uploads"
LAKE_BUCKET = "fruits-test-lake"
LAKE_URI = f"s3://{LAKE_BUCKET}/lake"
KEY_PARAMETER = "/fruits/test/pseudonym-key"
REGION = "eu-west-3"


@pytest.fixture
def s3_lake(mocked_aws, sample_image_paths, monkeypatch):
    """Alice and bob upload before and after a key rotation; one manifest each is archived.

    The stage's Glue database exists but holds no table yet (moto's Glue cannot commit Iceberg
    tables: the table part of an erasure is tested on a local lake).
    """
    from fruits_ingest.config import IngestConfig
    from fruits_ingest.events import ObjectRef
    from fruits_ingest.processor import process_upload
    from fruits_ingest.pseudonym_key import PseudonymKeySource
    from fruits_ingest.storage import S3ObjectStore

    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    for bucket in (UPLOADS_BUCKET, LAKE_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=LAKE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    monkeypatch.setenv("FRUITS_GLUE_DATABASE", "fruits_test")
    boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": "fruits_test"})
    config = IngestConfig(lake_uri=LAKE_URI, pseudonym_key_parameter=KEY_PARAMETER)
    store = S3ObjectStore(s3)
    images = sample_image_paths[::23]
    ingested: dict[str, list[str]] = {"alice": [], "bob": []}
    for rotation, key_value in enumerate(("first-key-0123456789abcdef", "second-key-0123456789abcdef")):
        ssm.put_parameter(Name=KEY_PARAMETER, Value=key_value, Type="SecureString", Overwrite=rotation > 0)
        pseudonym_key = PseudonymKeySource(config, lambda: ssm).get()
        for number, name in enumerate(ingested):
            for broken in (False, True):
                data = images[rotation * 2 + number].read_bytes()
                data = data[:400] if broken else data
                key = f"uploads/{name}-{rotation}-{broken}.jpg"
                metadata = dict(SUBJECTS[name], label="apple")
                etag = s3.put_object(Bucket=UPLOADS_BUCKET, Key=key, Body=data, Metadata=metadata)["ETag"]
                ref = ObjectRef(
                    UPLOADS_BUCKET, key, f"s3://{UPLOADS_BUCKET}/{key}", datetime.now(UTC), etag.strip('"')
                )
                outcome = process_upload(ref, config, store, pseudonym_key)
                assert outcome.status == ("quarantined" if broken else "accepted"), outcome
                ingested[name].append(outcome.image_id)
    for name in ingested:
        # The stream's cleanSource moves the first manifest to the archive: on a versioned bucket the
        # original stays behind as a noncurrent version under manifests/.
        [source] = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=LAKE_BUCKET, Prefix="lake/manifests/")["Contents"]
            if ingested[name][0] in o["Key"]
        ]
        s3.copy_object(
            Bucket=LAKE_BUCKET,
            Key=f"lake/{contracts.MANIFESTS_ARCHIVE_PREFIX}{LAKE_BUCKET}/{source}",
            CopySource={"Bucket": LAKE_BUCKET, "Key": source},
        )
        s3.delete_object(Bucket=LAKE_BUCKET, Key=source)
    return s3, ingested


def all_versions(s3) -> list[dict]:
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=LAKE_BUCKET)
    return [entry for page in pages for entry in page.get("Versions", []) + page.get("DeleteMarkers", [])]


def run_cli(*args: str) -> int:
    """The subject commands on this lake, whose ingest took the person from the user-id metadata."""
    return main(
        ["subject", *args, "--lake", LAKE_URI, "--key-parameter", KEY_PARAMETER, "--identity", "metadata"]
    )


def test_export_finds_the_records_of_every_key_version(s3_lake, tmp_path):
    _, ingested = s3_lake
    out = tmp_path / "alice.json"
    assert run_cli("export", "--user-id", SUBJECTS["alice"]["user-id"], "--out", str(out)) == 0
    document = json.loads(out.read_text())
    # THEN both key versions' pseudonyms were used, and the records under each were found
    assert [p["key_version"] for p in document["pseudonyms"]] == ["1", "2"]
    found = {m["image_id"]: m["key_version"] for m in document["manifests"] + document["archived_manifests"]}
    assert found == {ingested["alice"][0]: "1", ingested["alice"][2]: "2"}
    # (the archived manifest is found twice: its copy in the archive and its noncurrent original)
    assert len(document["archived_manifests"]) == 1 and len(document["manifests"]) == 2
    assert {q["key_version"] for q in document["quarantine_records"]} == {"1", "2"}
    assert len(document["clean_images"]) == 2


def test_erase_removes_every_version_and_delete_marker_of_the_subject(s3_lake, tmp_path, capsys, monkeypatch):
    s3, ingested = s3_lake
    monkeypatch.setenv("FRUITS_OPERATOR", "dpo-on-duty")
    before = all_versions(s3)
    # WHEN alice's data is erased
    assert run_cli("erase", "--user-id", SUBJECTS["alice"]["user-id"]) == 0
    audit = json.loads(capsys.readouterr().out)
    after = all_versions(s3)
    # THEN no version or delete marker of any of her keys is left; bob's are all there
    assert not [e for e in after if any(image_id in e["Key"] for image_id in ingested["alice"])]
    bobs = [e for e in before if any(image_id in e["Key"] for image_id in ingested["bob"])]
    assert bobs and all(entry in after for entry in bobs)
    # AND the audit record counts the versions, two key versions, and holds no raw value
    assert audit["counts"] == {
        "archived_manifests": 1,
        "clean_images": 2,
        "manifests": 2,
        "quarantine_records": 2,
        # the Glue catalog was consulted: no table yet, so no row
        "feature_rows": 0,
        "error_rows": 0,
        "table_files_removed": 0,
        "table_orphan_files_left": 0,
    }
    assert audit["key_versions"] == ["1", "2"]
    [record] = [e for e in after if e["Key"].startswith(f"lake/{contracts.AUDIT_PREFIX}")]
    stored = s3.get_object(Bucket=LAKE_BUCKET, Key=record["Key"])["Body"].read().decode()
    assert json.loads(stored) == audit
    assert not [value for value in SUBJECTS["alice"].values() if value in stored]
    # AND two tombstones (one per key version) stop her in-flight uploads
    tombstones = [e["Key"] for e in after if e["Key"].startswith(f"lake/{contracts.TOMBSTONES_PREFIX}")]
    assert len(tombstones) == 2
    # AND her export is empty
    out = tmp_path / "alice.json"
    assert run_cli("export", "--user-id", SUBJECTS["alice"]["user-id"], "--out", str(out)) == 0
    document = json.loads(out.read_text())
    assert all(
        document[kind] == []
        for kind in ("manifests", "archived_manifests", "quarantine_records", "clean_images")
    )


def test_an_s3_lake_without_a_key_parameter_is_a_configuration_error(mocked_aws, capsys, monkeypatch):
    monkeypatch.delenv("PSEUDONYM_KEY_PARAMETER", raising=False)
    assert main(["subject", "erase", "--lake", LAKE_URI, "--user-id", "x"]) == 2
    assert "--key-parameter" in capsys.readouterr().err


def test_on_glue_the_stage_database_tables_are_addressed_in_the_fruits_namespace(mocked_aws, monkeypatch):
    from fruits_lake.catalog import ERRORS_TABLE, open_catalog
    from fruits_privacy.subject_plan import ImageRef
    from fruits_privacy.subject_tables import ERROR_ROWS, IcebergSubjectTables

    monkeypatch.setenv("FRUITS_GLUE_DATABASE", "fruits_test")
    glue = boto3.client("glue", region_name=REGION)
    glue.create_database(DatabaseInput={"Name": "fruits_test"})
    glue.create_table(
        DatabaseName="fruits_test",
        TableInput={"Name": "errors", "TableType": "EXTERNAL_TABLE", "Parameters": {"table_type": "ICEBERG"}},
    )
    tables = IcebergSubjectTables(open_catalog(LAKE_URI))
    # GIVEN Glue lists the table as (stage database, errors) THEN it is found as fruits.errors
    [(kind, identifier, row_filter)] = tables._filters(set(), {ImageRef("2026-03-01", "a" * 32)})
    assert (kind, identifier) == (ERROR_ROWS, ERRORS_TABLE)
    assert "a" * 32 in str(row_filter)


SUB = "3f1c0e5a-6d2b-4c8e-9a1f-0b7d2e4c6a81"


@pytest.fixture
def key_identity_lake(mocked_aws, sample_image_paths, monkeypatch):
    """As deployed: the person is the Cognito sub in the upload key; one upload of SUB is in the lake."""
    from fruits_ingest.config import IngestConfig
    from fruits_ingest.events import ObjectRef
    from fruits_ingest.processor import process_upload
    from fruits_ingest.pseudonym_key import PseudonymKeySource
    from fruits_ingest.storage import S3ObjectStore

    s3 = boto3.client("s3", region_name=REGION)
    ssm = boto3.client("ssm", region_name=REGION)
    for bucket in (UPLOADS_BUCKET, LAKE_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    monkeypatch.setenv("FRUITS_GLUE_DATABASE", "fruits_test")
    boto3.client("glue", region_name=REGION).create_database(DatabaseInput={"Name": "fruits_test"})
    ssm.put_parameter(Name=KEY_PARAMETER, Value="first-key-0123456789abcdef", Type="SecureString")
    config = IngestConfig(lake_uri=LAKE_URI, pseudonym_key_parameter=KEY_PARAMETER, identity_from_key=True)
    store = S3ObjectStore(s3)

    def upload(number: int):
        key = f"uploads/{SUB}/{number:032x}.jpg"
        data = sample_image_paths[number].read_bytes()
        etag = s3.put_object(Bucket=UPLOADS_BUCKET, Key=key, Body=data)["ETag"].strip('"')
        ref = ObjectRef(UPLOADS_BUCKET, key, f"s3://{UPLOADS_BUCKET}/{key}", datetime.now(UTC), etag)
        return process_upload(ref, config, store, PseudonymKeySource(config, lambda: ssm).get())

    assert upload(1).status == "accepted"
    return upload


def test_a_sub_pasted_in_upper_case_erases_the_same_person(key_identity_lake, capsys):
    # WHEN the sub is pasted in upper case with blanks around it (the default identity: the key)
    capsys.readouterr()
    code = main(
        [
            "subject",
            "erase",
            "--lake",
            LAKE_URI,
            "--key-parameter",
            KEY_PARAMETER,
            "--user-id",
            f" {SUB.upper()} ",
        ]
    )
    # THEN it is the same person: the upload is erased, and the next one is refused
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["counts"]["manifests"] == 1 and record["counts"]["clean_images"] == 1
    assert key_identity_lake(2).status == "skipped"


@pytest.mark.parametrize(
    "user_id",
    ["jane.doe@example.org", f"{SUB}0", SUB.replace("-", ""), f"{SUB}\x00"],
    ids=["e-mail", "too-long", "no-hyphens", "nul-after"],
)
def test_an_id_the_ingest_never_derives_is_refused_without_echoing_it(key_identity_lake, capsys, user_id):
    capsys.readouterr()
    code = main(
        ["subject", "erase", "--lake", LAKE_URI, "--key-parameter", KEY_PARAMETER, "--user-id", user_id]
    )
    err = capsys.readouterr().err
    assert code == 2 and "not a Cognito sub" in err and user_id.strip() not in err
    assert len(err.strip().splitlines()) == 1


def test_an_erasure_that_finds_nothing_says_so(key_identity_lake, capsys):
    other = "00000000-0000-4000-8000-000000000000"
    capsys.readouterr()
    code = main(
        ["subject", "erase", "--lake", LAKE_URI, "--key-parameter", KEY_PARAMETER, "--user-id", other]
    )
    captured = capsys.readouterr()
    assert code == 0 and set(json.loads(captured.out)["counts"].values()) == {0}
    assert "nothing found for this user id" in captured.err


@pytest.mark.parametrize("user_id", ["", "x" * 129, "alice\x00"], ids=["empty", "129-chars", "control-char"])
def test_a_metadata_user_id_the_ingest_refuses_is_refused(key_identity_lake, capsys, user_id):
    capsys.readouterr()
    code = run_cli("export", "--user-id", user_id, "--out", "/dev/null")
    assert code == 2 and "can match nothing" in capsys.readouterr().err
