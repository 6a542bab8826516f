#!/usr/bin/env bash
# Build the vegeta load generator that the ingest bench drives submissions with (tests/bench/ingest.py runs
# this script before its first attack), pinned, into <repo>/.cache/bin/vegeta (deploy/go/install.sh).
#
#   deploy/vegeta/fetch_vegeta.sh                      -> <repo>/.cache/bin/vegeta
#   VEGETA_VERSION=v12.13.0 deploy/vegeta/fetch_vegeta.sh
#
# A cold build takes ≈ 1 min on 2 cores, a warm one ≈ 15 s.
set -euo pipefail

VEGETA_VERSION="${VEGETA_VERSION:-v12.13.0}"
exec "$(dirname "${BASH_SOURCE[0]}")/../go/install.sh" vegeta github.com/tsenart/vegeta/v12 "${VEGETA_VERSION}" \
  "-X main.Version=${VEGETA_VERSION}"
