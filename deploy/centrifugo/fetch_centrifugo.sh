#!/usr/bin/env bash
# Build the Centrifugo server that `make bench` runs beside the edge (tests/bench/centrifugo.py), pinned,
# into <repo>/.cache/bin/centrifugo (deploy/go/install.sh).
#
#   deploy/centrifugo/fetch_centrifugo.sh                        -> <repo>/.cache/bin/centrifugo
#   CENTRIFUGO_VERSION=v6.9.1 deploy/centrifugo/fetch_centrifugo.sh
#
# The version is stamped the way Centrifugo's release build does, so `centrifugo version` tells. A cold
# build downloads ~100 modules and takes ≈ 6 min on 2 cores; a warm one ≈ 1 min.
set -euo pipefail

CENTRIFUGO_VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"
module=github.com/centrifugal/centrifugo/v6
exec "$(dirname "${BASH_SOURCE[0]}")/../go/install.sh" centrifugo "${module}" "${CENTRIFUGO_VERSION}" \
  "-X ${module}/internal/build.Version=${CENTRIFUGO_VERSION#v}"
