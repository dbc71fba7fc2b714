#!/usr/bin/env bash
# EMR bootstrap action: builds the streaming job's Python 3.11 environment on every node.
#
# EMR runs it from s3://<lake>/code/bootstrap/install-python-deps.sh (uploaded by `fruits deploy`)
# before Spark starts. Spark uses the interpreter it creates (spark.pyspark.python in
# infra/emr-cluster.yaml). The pins below are the versions the test suite runs with (pyproject.toml).
#
# Idempotent: a marker holding the SHA-256 of the pin list is written only after a successful
# install, so a re-run with the same pins does nothing and a changed pin list reinstalls.
# Fails loudly: any error stops the script with a message naming the failed step, and EMR then
# fails the cluster start instead of running Spark on a half-installed environment.
#
# Settings (environment, for tests and other layouts; the defaults are what EMR uses):
#   FRUITS_PYTHON      interpreter that creates the environment   (default: python3.11)
#   FRUITS_VENV_DIR    where the environment is built               (default: /opt/fruits/python3.11)
set -euo pipefail

readonly PYTHON="${FRUITS_PYTHON:-python3.11}"
readonly VENV_DIR="${FRUITS_VENV_DIR:-/opt/fruits/python3.11}"
readonly MARKER="${VENV_DIR}/.fruits-requirements.sha256"

# tensorflow-cpu, ai-edge-litert (the default featurizer runtime) and pillow are pinned exactly as
# in pyproject.toml; the others are the versions the test suite runs with, inside pyproject.toml's
# ranges (tests/infra checks both).
readonly REQUIREMENTS="tensorflow-cpu==2.20.0
ai-edge-litert==2.3.0
pillow==12.3.0
boto3==1.44.8
numpy==2.4.6
pandas==2.3.3
pyarrow==21.0.0
pyiceberg[glue,pyiceberg-core]==0.10.0"

log() { echo "install-python-deps: $*"; }
fail() {
    echo "install-python-deps: FAILED: $*" >&2
    exit 1
}
trap 'fail "unexpected error at line ${LINENO} (exit $?)"' ERR

ensure_python() {
    if command -v "${PYTHON}" >/dev/null 2>&1; then
        return
    fi
    log "${PYTHON} not found; installing it with dnf"
    sudo dnf install -y python3.11 python3.11-pip \
        || fail "${PYTHON} is missing and 'dnf install python3.11' failed"
    command -v "${PYTHON}" >/dev/null 2>&1 || fail "${PYTHON} still not on PATH after dnf install"
}

check_python_version() {
    "${PYTHON}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
        || fail "${PYTHON} is not Python 3.11 (Spark's workers and the job must run the same 3.11)"
}

ensure_writable_dir() {
    local parent
    parent="$(dirname "${VENV_DIR}")"
    if mkdir -p "${VENV_DIR}" 2>/dev/null && [[ -w "${VENV_DIR}" ]]; then
        return
    fi
    # /opt belongs to root on EMR nodes, and bootstrap actions run as the hadoop user.
    sudo install -d -o "$(id -u)" -g "$(id -g)" "${parent}" "${VENV_DIR}" \
        || fail "cannot create ${VENV_DIR}"
}

main() {
    local pins_sha256
    pins_sha256="$(printf '%s\n' "${REQUIREMENTS}" | sha256sum | cut -d ' ' -f 1)"

    if [[ -f "${MARKER}" && "$(cat "${MARKER}")" == "${pins_sha256}" ]]; then
        log "requirements ${pins_sha256:0:12} already installed in ${VENV_DIR}; skipping"
        return
    fi

    ensure_python
    check_python_version
    ensure_writable_dir
    log "creating ${VENV_DIR} with ${PYTHON}"
    "${PYTHON}" -m venv "${VENV_DIR}" || fail "'${PYTHON} -m venv ${VENV_DIR}' failed"

    local requirements_file
    requirements_file="$(mktemp)"
    printf '%s\n' "${REQUIREMENTS}" >"${requirements_file}"
    log "installing $(wc -l <"${requirements_file}") pinned packages"
    if ! "${VENV_DIR}/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
        --requirement "${requirements_file}"; then
        rm -f "${requirements_file}"
        fail "pip install of the pinned requirements failed (see pip's output above); no marker written"
    fi
    rm -f "${requirements_file}"

    "${VENV_DIR}/bin/python" -c "import tensorflow, ai_edge_litert.interpreter, PIL, boto3, numpy, pandas, pyarrow, pyiceberg" \
        || fail "the new environment cannot import the installed packages"

    printf '%s\n' "${pins_sha256}" >"${MARKER}.tmp"
    mv "${MARKER}.tmp" "${MARKER}"
    log "installed requirements ${pins_sha256:0:12} into ${VENV_DIR}"
}

main "$@"
