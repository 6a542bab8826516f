#!/usr/bin/env bash
# Obtain the `helm` CLI without Docker and without downloading a release binary from a website:
# build it from source with `go install`, fetching the module through the Go module proxy.
#
#   deploy/helm/fetch_helm.sh            -> <repo>/.cache/bin/helm
#   HELM_VERSION=v3.21.4 deploy/helm/fetch_helm.sh
#
# Idempotent: does nothing when <repo>/.cache/bin/helm already reports the wanted version.
# The version and Kubernetes capability (ldflags) are stamped the way helm's own Makefile does,
# so `helm version` prints e.g. v3.22.0 and `helm template` assumes the client-go Kubernetes minor.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="${REPO_ROOT}/.cache/bin"
HELM="${BIN_DIR}/helm"

if [[ -x "${HELM}" ]]; then
  have="$("${HELM}" version --template '{{.Version}}' 2>/dev/null || true)"
  if [[ "${have}" == "${HELM_VERSION}" ]]; then
    echo "helm ${HELM_VERSION} already at ${HELM}"
    exit 0
  fi
  echo "helm at ${HELM} is '${have}', want ${HELM_VERSION}: rebuilding"
fi

if ! command -v go >/dev/null 2>&1; then
  echo "fetch_helm: 'go' is not on PATH; install Go (>= the version helm ${HELM_VERSION} needs)" >&2
  exit 1
fi

start=$(date +%s)
module="helm.sh/helm/v3"
# Download the module (through GOPROXY) to read its go.mod: the client-go version gives the
# Kubernetes version helm assumes for .Capabilities.KubeVersion (helm's Makefile does the same).
gomod="$(go mod download -json "${module}@${HELM_VERSION}" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
k8s_minor="$(sed -n 's/^[[:space:]]*k8s\.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "${gomod}" | head -n1)"

ldflags="-w -s -X ${module}/internal/version.version=${HELM_VERSION} -X ${module}/internal/version.gitTreeState=clean"
if [[ -n "${k8s_minor}" ]]; then
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X ${module}/${pkg}.k8sVersionMajor=1 -X ${module}/${pkg}.k8sVersionMinor=${k8s_minor}"
  done
fi

mkdir -p "${BIN_DIR}"
GOBIN="${BIN_DIR}" CGO_ENABLED=0 GOFLAGS="$(go env GOFLAGS) -modcacherw" \
  go install -trimpath -ldflags "${ldflags}" "${module}/cmd/helm@${HELM_VERSION}"

echo "helm $("${HELM}" version --template '{{.Version}}') installed at ${HELM} in $(( $(date +%s) - start ))s"
