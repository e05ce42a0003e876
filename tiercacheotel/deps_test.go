package tiercacheotel_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAPIOnly: the package depends on OpenTelemetry's API, never on its SDK
// or an exporter (the application chooses those), nor on Redis or
// Prometheus clients.
func TestAPIOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	var otel int
	for _, dep := range deps {
		switch {
		case strings.HasPrefix(dep, "go.opentelemetry.io/otel/sdk"),
			strings.HasPrefix(dep, "go.opentelemetry.io/otel/exporters"),
			strings.HasPrefix(dep, "google.golang.org/grpc"),
			strings.HasPrefix(dep, "github.com/redis/"),
			strings.HasPrefix(dep, "github.com/prometheus/"):
			t.Errorf("tiercacheotel depends on %s", dep)
		case strings.HasPrefix(dep, "go.opentelemetry.io/otel"):
			otel++
		}
	}
	if otel == 0 {
		t.Errorf("go list found no OpenTelemetry package among %d dependencies", len(deps))
	}
}
