#!/usr/bin/env bash
# EMR bootstrap action: makes sure every node has the interpreter the job's packed environment runs on.
#
# EMR runs it from s3://<lake>/code/bootstrap/check-python.sh (uploaded by `fruits deploy`) before
# Spark starts. The job's packages come in its environment archive (`fruits deploy upload` packs it
# with venv-pack; each step passes it with `--archives ...#environment`), so nothing is pip-installed
# here and nodes need no PyPI and no NAT gateway. venv-pack does not copy Python itself: the
# archive's bin/python links to /usr/bin/python3.11, EMR 8's own Python 3.11
# (operations/env_archive.py EMR_PYTHON_PREFIX; tests/infra checks both name the same path).
#
# If that interpreter is missing it is installed with dnf from the Amazon Linux repositories, then
# its version is checked. Fails loudly: EMR then fails the cluster start instead of running Spark
# with workers that cannot start.
#
# Settings (environment, for tests; the default is what EMR uses):
#   FRUITS_PYTHON      the interpreter the archive links to   (default: /usr/bin/python3.11)
set -euo pipefail

readonly PYTHON="${FRUITS_PYTHON:-/usr/bin/python3.11}"

log() { echo "check-python: $*"; }
fail() {
    echo "check-python: FAILED: $*" >&2
    exit 1
}
trap 'fail "unexpected error at line ${LINENO} (exit $?)"' ERR

ensure_python() {
    if [[ -x "${PYTHON}" ]]; then
        return
    fi
    log "${PYTHON} not found; installing python3.11 with dnf"
    sudo dnf install -y python3.11 || fail "${PYTHON} is missing and 'dnf install python3.11' failed"
    [[ -x "${PYTHON}" ]] || fail "${PYTHON} still missing after dnf install"
}

check_python_version() {
    "${PYTHON}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || fail "${PYTHON} is not Python 3.11 (the packed environment's wheels are built for 3.11)"
}

main() {
    ensure_python
    check_python_version
    log "${PYTHON} is Python 3.11: the job's packed environment can run on this node"
}

main "$@"
