package engine

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayers: the data plane's parts are wired in this package only. The
// CLI (flags and output) and the node (registry, local API) reach the data
// plane through the engine, never by importing the filter or the
// transports; the CLI does not import the device either.
func TestLayers(t *testing.T) {
	const internal = "github.com/tunnelmesh/tunnelmesh/agent/internal/"
	for dir, forbidden := range map[string][]string{
		"../cli":  {"device", "filter", "transport"},
		"../node": {"filter", "transport"},
	} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("glob %s: %v (%d files)", dir, err, len(files))
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range af.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				for _, pkg := range forbidden {
					if path == internal+pkg {
						t.Errorf("%s imports %s: go through package engine", f, path)
					}
				}
			}
		}
	}
}
