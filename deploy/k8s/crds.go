//go:build tools

// Package k8s only pins modules whose files (not code) the control plane uses: the Prometheus
// Operator's CRDs (example/prometheus-operator-crd/ in its module) for the chart tests that install
// ServiceMonitors and PrometheusRules. Nothing here is compiled; the import keeps the requirement,
// and its go.sum hash, through `go mod tidy`.
package k8s

import _ "github.com/prometheus-operator/prometheus-operator/pkg/versionutil"
