#!/usr/bin/env bash
# Build the Centrifugo server that `make bench` runs beside the edge (tests/bench/centrifugo.py),
# from its Go module through the Go module proxy (`go install module@version`), never a release
# binary from a website. Cached at <repo>/.cache/bin/centrifugo (ignored; never committed).
#
#   deploy/centrifugo/fetch_centrifugo.sh                        -> <repo>/.cache/bin/centrifugo
#   CENTRIFUGO_VERSION=v6.9.1 deploy/centrifugo/fetch_centrifugo.sh
#
# Idempotent: does nothing when the cached binary already reports the wanted version. The version
# is stamped with -ldflags the way Centrifugo's release build does, so `centrifugo version` tells.
# A cold build downloads ~100 modules and takes ≈ 6 min on 2 cores; a warm one ≈ 1 min.
set -euo pipefail

CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${REPO_ROOT}/.cache/bin"
BINARY="${BIN_DIR}/centrifugo"
module="github.com/centrifugal/centrifugo/v6"
want="${CENTRIFUGO_VERSION#v}"

if [[ -x "${BINARY}" ]]; then
  have="$("${BINARY}" version 2>/dev/null | sed -n 's/^Centrifugo v\{0,1\}\([^ ]*\).*/\1/p' || true)"
  if [[ "${have}" == "${want}" ]]; then
    echo "centrifugo ${CENTRIFUGO_VERSION} already at ${BINARY}"
    exit 0
  fi
  echo "centrifugo at ${BINARY} is '${have}', want ${want}: rebuilding"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "fetch_centrifugo: 'go' is not on PATH; run 'make system-deps' (Go >= the version ${module} needs)" >&2
  exit 1
fi

start=$(date +%s)
mkdir -p "${BIN_DIR}"
GOBIN="${BIN_DIR}" CGO_ENABLED=0 GOFLAGS="$(go env GOFLAGS) -modcacherw" \
  go install -trimpath -ldflags "-s -w -X ${module}/internal/build.Version=${want}" "${module}@${CENTRIFUGO_VERSION}"

echo "$("${BINARY}" version) installed at ${BINARY} in $(( $(date +%s) - start ))s"
