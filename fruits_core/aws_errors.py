"""The one place that recognises "no AWS credentials" errors and words the fix.

`fruits_cli.main` turns them into one stderr line and exit code 2 for every
command; `fruits deploy` uses the same message. botocore is only consulted when a
command has already imported it, so `fruits cost` and `fruits --help` stay fast.
"""

from __future__ import annotations

import sys

CREDENTIALS_FIX = (
    "set AWS_PROFILE (after `aws configure` or `aws sso login`), or AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY; see docs/troubleshooting.md"
)
# ClientError codes that mean "these credentials are not usable" (not "access denied to X").
_CREDENTIAL_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
    }
)


def missing_credentials_message(error: BaseException) -> str | None:
    """One line naming what is missing and how to fix it, or None when `error` is something else.

    Follows the `__cause__`/`__context__` chain, so an error re-raised by the
    pipeline's own wrappers is still recognised.
    """
    botocore_exceptions = sys.modules.get("botocore.exceptions")
    if botocore_exceptions is None:
        return None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        missing = _classes(botocore_exceptions, "NoCredentialsError", "PartialCredentialsError")
        if isinstance(current, missing):
            return f"no usable AWS credentials ({current}): {CREDENTIALS_FIX}"
        if isinstance(current, _classes(botocore_exceptions, "TokenRetrievalError", "SSOTokenLoadError")):
            return f"the AWS SSO session has expired ({current}): run `aws sso login`, or {CREDENTIALS_FIX}"
        if isinstance(current, botocore_exceptions.ClientError):
            code = current.response.get("Error", {}).get("Code", "")
            if code in _CREDENTIAL_CODES:
                return f"the AWS credentials were rejected ({code}): {CREDENTIALS_FIX}"
        current = current.__cause__ or current.__context__
    return None


def _classes(module, *names: str) -> tuple[type, ...]:
    return tuple(getattr(module, name) for name in names if hasattr(module, name))
