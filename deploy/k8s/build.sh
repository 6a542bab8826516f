#!/usr/bin/env bash
# Build the tools of the local Kubernetes control plane from the wrapper module next to this script
# (go.mod pins every version, go.sum their hashes) into <repo>/.cache/k8s/bin, with `go build`
# through the Go module proxy. No release binaries are downloaded; nothing built is committed.
#
#   deploy/k8s/build.sh               every tool: etcd kube-apiserver kube-controller-manager
#                                     kube-scheduler kubectl kwok helm, plus the data files below
#   deploy/k8s/build.sh helm          only helm (what `make setup` needs for the chart lint tests)
#
# Idempotent: a tool is rebuilt only when go.mod, go.sum, this script or the Go version changed
# since it was built (a key stored next to it). All tools are built by one `go build`, so the client
# libraries they share compile once: ≈ 9 min and ≈ 14 CPU-minutes cold on 2 cores, seconds warm.
#
# Data files copied out of the pinned modules into <repo>/.cache/k8s/share (read by controlplane.py):
#   stages/  kwok's node and pod stages (sigs.k8s.io/kwok kustomize/stage)
#   crds/    the Prometheus Operator CRDs (example/prometheus-operator-crd)
set -euo pipefail

MODULE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${MODULE_DIR}/../.." && pwd)"
CACHE_DIR="${AGENTWIRE_K8S_CACHE:-${REPO_ROOT}/.cache/k8s}"
BIN_DIR="${CACHE_DIR}/bin"
SHARE_DIR="${CACHE_DIR}/share"

declare -A PACKAGES=(
  [etcd]=go.etcd.io/etcd/server/v3
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [helm]=helm.sh/helm/v3/cmd/helm
)
ALL_TOOLS=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)
KWOK_STAGES=(
  node/fast/node-initialize.yaml
  node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml
  pod/fast/pod-complete.yaml
  pod/fast/pod-delete.yaml
)

if [[ $# -gt 0 ]]; then tools=("$@"); else tools=("${ALL_TOOLS[@]}"); fi
for tool in "${tools[@]}"; do
  [[ -n "${PACKAGES[${tool}]:-}" ]] || { echo "build.sh: unknown tool '${tool}' (one of: ${ALL_TOOLS[*]})" >&2; exit 2; }
done
if ! command -v go >/dev/null 2>&1; then
  echo "build.sh: 'go' is not on PATH; install Go >= $(sed -n 's/^go //p' "${MODULE_DIR}/go.mod")" >&2
  exit 1
fi

pinned() { sed -n "s|^[[:space:]]*$1 \(v[^ ]*\).*|\1|p" "${MODULE_DIR}/go.mod" | head -n1; }

key="$(cat "${MODULE_DIR}/go.mod" "${MODULE_DIR}/go.sum" "${BASH_SOURCE[0]}" <(go version) | sha256sum | cut -c1-16)"
stale=()
for tool in "${tools[@]}"; do
  if [[ ! -x "${BIN_DIR}/${tool}" || "$(cat "${BIN_DIR}/.${tool}.key" 2>/dev/null)" != "${key}" ]]; then
    stale+=("${tool}")
  fi
done
want_share=0
[[ " ${tools[*]} " == *" kwok "* && "$(cat "${SHARE_DIR}/.key" 2>/dev/null)" != "${key}" ]] && want_share=1

if [[ ${#stale[@]} -eq 0 && ${want_share} -eq 0 ]]; then
  echo "k8s tools up to date in ${BIN_DIR}: ${tools[*]}"
  exit 0
fi

cd "${MODULE_DIR}"
export GOFLAGS="${GOFLAGS:-} -modcacherw"

if [[ ${#stale[@]} -gt 0 ]]; then
  # Versions stamped the way the projects' own release builds do: without them kube-apiserver
  # reports v0.0.0 (and helm's kubeVersion check fails), helm reports no version and assumes an
  # older Kubernetes for `helm template`.
  kube="$(pinned k8s.io/kubernetes)"
  helm_version="$(pinned helm.sh/helm/v3)"
  kube_minor="$(cut -d. -f2 <<<"${kube}")"
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${kube} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${kube_minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean"
  done
  ldflags+=" -X helm.sh/helm/v3/internal/version.version=${helm_version}"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/${pkg}.k8sVersionMajor=1 -X helm.sh/helm/v3/${pkg}.k8sVersionMinor=${kube_minor}"
  done

  packages=()
  for tool in "${stale[@]}"; do packages+=("${PACKAGES[${tool}]}"); done
  mkdir -p "${BIN_DIR}"
  out="$(mktemp -d "${CACHE_DIR}/build.XXXXXX")"
  trap 'rm -rf "${out}"' EXIT
  echo "building ${stale[*]} (Kubernetes ${kube}, helm ${helm_version}) into ${BIN_DIR}"
  start=$(date +%s)
  # One invocation: the packages the tools share compile once, independent ones in parallel.
  CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${out}/" "${packages[@]}"
  for tool in "${stale[@]}"; do
    # go build names a binary after its package path (go.etcd.io/etcd/server/v3 -> server).
    built="$(basename "${PACKAGES[${tool}]}")"
    [[ "${built}" =~ ^v[0-9]+$ ]] && built="$(basename "$(dirname "${PACKAGES[${tool}]}")")"
    mv -f "${out}/${built}" "${BIN_DIR}/${tool}"
    echo "${key}" > "${BIN_DIR}/.${tool}.key"
  done
  echo "built ${stale[*]} in $(( $(date +%s) - start ))s"
fi

if [[ ${want_share} -eq 1 ]]; then
  moddir() { go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'; }
  kwok_dir="$(moddir sigs.k8s.io/kwok)"
  crd_dir="$(moddir github.com/prometheus-operator/prometheus-operator)"
  rm -rf "${SHARE_DIR}"
  mkdir -p "${SHARE_DIR}/stages" "${SHARE_DIR}/crds"
  for stage in "${KWOK_STAGES[@]}"; do
    cp "${kwok_dir}/kustomize/stage/${stage}" "${SHARE_DIR}/stages/"
  done
  cp "${crd_dir}"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "${SHARE_DIR}/crds/"
  chmod -R u+w "${SHARE_DIR}"
  echo "${key}" > "${SHARE_DIR}/.key"
  echo "kwok stages and Prometheus Operator CRDs in ${SHARE_DIR}"
fi
