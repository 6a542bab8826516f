#!/usr/bin/env bash
# Build a pinned Go tool from its module through the Go module proxy (`go install module@version`), never
# a release binary from a website, into <repo>/.cache/bin (ignored; never committed). Used by the tools'
# own scripts (deploy/centrifugo/fetch_centrifugo.sh, deploy/vegeta/fetch_vegeta.sh).
#
#   deploy/go/install.sh NAME MODULE VERSION [LDFLAGS]   -> <repo>/.cache/bin/NAME
#
# Idempotent: nothing is built when <repo>/.cache/bin/NAME.installed names the same module@version and
# the binary is there. LDFLAGS (e.g. "-X main.Version=v1.2.3") stamps the version the way the tool's
# release build does.
set -euo pipefail

name="$1" module="$2" version="$3" ldflags="${4:-}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${REPO_ROOT}/.cache/bin"
binary="${BIN_DIR}/${name}" stamp="${BIN_DIR}/${name}.installed"
wanted="${module}@${version}"

if [[ -x "${binary}" && -f "${stamp}" && "$(cat "${stamp}")" == "${wanted}" ]]; then
  echo "${name} ${version} already at ${binary}"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "${name}: 'go' is not on PATH; run 'make system-deps' (Go >= the version ${module} needs)" >&2
  exit 1
fi

start=$(date +%s)
mkdir -p "${BIN_DIR}"
GOBIN="${BIN_DIR}" CGO_ENABLED=0 GOFLAGS="$(go env GOFLAGS) -modcacherw" \
  go install -trimpath -ldflags "-s -w ${ldflags}" "${wanted}"
echo "${wanted}" > "${stamp}"
echo "${name} ${version} installed at ${binary} in $(( $(date +%s) - start ))s"
