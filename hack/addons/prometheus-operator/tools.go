//go:build tools

// The Prometheus Operator and its config reloader, built from this module at one pinned release
// (hack/addons/build.sh runs `go build` on each; nothing here is compiled into the project). The upstream
// module replaces its own sub-modules with local paths, which do not reach a dependent module, so this
// one requires them at the same version.
package tools

import (
	_ "github.com/prometheus-operator/prometheus-operator/cmd/operator"
	_ "github.com/prometheus-operator/prometheus-operator/cmd/prometheus-config-reloader"
)
