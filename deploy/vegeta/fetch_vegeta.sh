#!/usr/bin/env bash
# Build the vegeta load generator that the ingest bench drives submissions with (tests/bench/ingest.py runs
# this script before its first attack) from its Go module through the Go module proxy (`go install
# module@version`), never a release binary from a website. Cached at <repo>/.cache/bin/vegeta (ignored;
# never committed).
#
#   deploy/vegeta/fetch_vegeta.sh                      -> <repo>/.cache/bin/vegeta
#   VEGETA_VERSION=v12.13.0 deploy/vegeta/fetch_vegeta.sh
#
# Idempotent: does nothing when the cached binary already reports the wanted version (stamped with
# -ldflags, as vegeta's release build does). A cold build takes ≈ 1 min on 2 cores, a warm one ≈ 15 s.
set -euo pipefail

VEGETA_VERSION="${VEGETA_VERSION:-v12.13.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${REPO_ROOT}/.cache/bin"
BINARY="${BIN_DIR}/vegeta"
module="github.com/tsenart/vegeta/v12"

if [[ -x "${BINARY}" ]]; then
  have="$("${BINARY}" -version 2>/dev/null | sed -n 's/^Version: *//p' || true)"
  if [[ "${have}" == "${VEGETA_VERSION}" ]]; then
    echo "vegeta ${VEGETA_VERSION} already at ${BINARY}"
    exit 0
  fi
  echo "vegeta at ${BINARY} is '${have}', want ${VEGETA_VERSION}: rebuilding"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "fetch_vegeta: 'go' is not on PATH; run 'make system-deps'" >&2
  exit 1
fi

start=$(date +%s)
mkdir -p "${BIN_DIR}"
GOBIN="${BIN_DIR}" CGO_ENABLED=0 GOFLAGS="$(go env GOFLAGS) -modcacherw" \
  go install -trimpath -ldflags "-s -w -X main.Version=${VEGETA_VERSION}" "${module}@${VEGETA_VERSION}"

echo "vegeta $("${BINARY}" -version | sed -n 's/^Version: *//p') installed at ${BINARY} in $(( $(date +%s) - start ))s"
