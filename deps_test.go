package tiercache_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestRootDependencies enforces the dependency rule: the root package may
// import only the standard library, golang.org/x/sync, otter and the
// default codec's JSON library (go-json-experiment/json: docs/architecture.md,
// "Codec"), so users who do not use Redis, Prometheus or the demo do not
// compile them.
func TestRootDependencies(t *testing.T) {
	for _, pkg := range []string{".", "./memo", "./stats", "./internal/flight", "./internal/wire", "./internal/breaker"} {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			switch {
			case strings.HasPrefix(dep, "github.com/tiercache/tiercache"),
				strings.HasPrefix(dep, "github.com/maypok86/otter/"),
				strings.HasPrefix(dep, "golang.org/x/sync/"),
				strings.HasPrefix(dep, "github.com/go-json-experiment/json"):
			default:
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
