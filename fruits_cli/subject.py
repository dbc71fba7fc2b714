"""`fruits subject export|erase`: a data subject's access (Art. 15) and erasure (Art. 17) requests.

Wiring only: settings validated here, the work in fruits_privacy.subjects (docs/gdpr.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import add_lake_argument, required_lake_uri

ENV_KEY_PARAMETER = "PSEUDONYM_KEY_PARAMETER"
ENV_OPERATOR = "FRUITS_OPERATOR"
ENV_IDENTITY = "FRUITS_IDENTITY"
ENV_SETTLE = "FRUITS_ERASE_SETTLE_SECONDS"
_NOTHING_FOUND = "nothing found for this user id under {} key version(s): check the id and --identity"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="<action>")
    export = actions.add_parser(
        "export",
        help="write everything the lake holds about a person as JSON",
        description="write everything the lake holds about a person as JSON",
    )
    erase = actions.add_parser(
        "erase",
        help="delete a person's images, records and table rows",
        description="delete a person's images, records and table rows",
    )
    for action in (export, erase):
        add_lake_argument(action)
        action.add_argument(
            "--user-id",
            required=True,
            help="the person's user id (deployed: their Cognito sub); never logged or stored",
        )
        action.add_argument(
            "--identity",
            choices=("key", "metadata"),
            default=os.environ.get(ENV_IDENTITY),
            help="where the ingest took the person from: 'key' (the Cognito sub in the upload key, as "
            "deployed; the choice for s3:// lakes when not given) or 'metadata' (the user-id metadata; "
            f"the choice for file:// lakes) (env {ENV_IDENTITY}); --user-id is checked and normalised "
            "the same way",
        )
        action.add_argument(
            "--key-parameter",
            default=os.environ.get(ENV_KEY_PARAMETER),
            help=f"s3:// lake: SSM SecureString of the pseudonym key, every version is used (env "
            f"{ENV_KEY_PARAMETER}); a file:// lake reads the key from FRUITS_PSEUDONYM_KEY",
        )
    export.add_argument("--out", type=Path, required=True, help="the JSON document to write")
    erase.add_argument(
        "--operator",
        default=os.environ.get(ENV_OPERATOR) or getpass.getuser(),
        help=f"who runs the erasure, for the audit record (env {ENV_OPERATOR}, default the login name)",
    )
    erase.add_argument(
        "--settle-seconds",
        default=os.environ.get(ENV_SETTLE, str(contracts.ERASURE_SETTLE_SECONDS)),
        help="seconds between the two passes, to let the ingests already past their tombstone check "
        "finish; at least the ingest function's timeout (env "
        f"{ENV_SETTLE}, default {contracts.ERASURE_SETTLE_SECONDS}: 120 s timeout plus a margin)",
    )


def run(args: argparse.Namespace) -> int:
    from fruits_privacy.lake_objects import open_lake_objects
    from fruits_privacy.subjects import erase_subject, export_subject

    lake = required_lake_uri(args.lake)
    pseudonyms = _pseudonyms(lake, args)
    objects = open_lake_objects(lake)
    tables = _tables(lake)
    if args.action == "export":
        document = export_subject(objects, tables, pseudonyms)
        args.out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        print(f"fruits subject export: written to {args.out}")
        if not any(
            value for name, value in document.items() if isinstance(value, list) and name != "pseudonyms"
        ):
            print(f"fruits subject export: {_NOTHING_FOUND.format(len(pseudonyms))}", file=sys.stderr)
        return 0
    if not args.operator.strip():
        raise ConfigError(f"--operator (or {ENV_OPERATOR}) must name who runs the erasure")
    settle = _settle_seconds(args.settle_seconds)
    record = erase_subject(objects, tables, pseudonyms, args.operator.strip(), settle_seconds=settle)
    print(json.dumps(record, sort_keys=True))
    if not any(record["counts"].values()):
        print(
            f"fruits subject erase: {_NOTHING_FOUND.format(len(pseudonyms))}; the tombstones are written, "
            "so this id's later uploads are refused",
            file=sys.stderr,
        )
    return 0


def _settle_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise ConfigError(f"--settle-seconds (or {ENV_SETTLE}) must be a number of seconds from 0 to 3600")
    return seconds


def _pseudonyms(lake: str, args: argparse.Namespace):
    from fruits_privacy.pseudonyms import local_keys, pseudonyms_of, ssm_keys, user_id_as_ingested

    local = lake.startswith("file://")
    if not local and not args.key_parameter:
        raise ConfigError(f"an s3:// lake needs --key-parameter (or {ENV_KEY_PARAMETER})")
    user_id = user_id_as_ingested(args.user_id, args.identity or ("metadata" if local else "key"))
    if local:
        keys = local_keys(os.environ)
    else:
        import boto3

        keys = ssm_keys(boto3.client("ssm"), args.key_parameter)
    return pseudonyms_of(user_id, keys)


def _tables(lake: str):
    """The lake's Iceberg tables; a local lake that has no catalog yet has no rows either.

    An s3:// lake always goes through Glue (FRUITS_GLUE_DATABASE): an erasure that silently
    skipped the tables would leave the subject's rows behind.
    """
    from fruits_lake.catalog import CATALOG_FILE, local_lake_root, open_catalog
    from fruits_privacy.subject_tables import IcebergSubjectTables
    from fruits_privacy.subjects import NoTables

    if lake.startswith("file://"):
        catalog_file = local_lake_root(lake) / contracts.CATALOG_PREFIX / CATALOG_FILE
        if not catalog_file.is_file():
            return NoTables()
    return IcebergSubjectTables(open_catalog(lake))
