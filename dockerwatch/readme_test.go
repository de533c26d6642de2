package dockerwatch_test

import (
	"os"
	"strings"
	"testing"

	"github.com/tunnelmesh/tunnelmesh/dockerwatch/internal/config"
)

// TestREADMEConfig parses the configuration shown in the README.
func TestREADMEConfig(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	s = s[strings.Index(s, "## Configuration"):]
	i := strings.Index(s, "```yaml\n")
	if i < 0 {
		t.Fatal("README has no yaml block")
	}
	s = s[i+len("```yaml\n"):]
	s = s[:strings.Index(s, "```")]
	c, err := config.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("README config: %v", err)
	}
	if c.Metrics != "mesh:9103" || c.AutoPublish {
		t.Errorf("README config = %+v", c)
	}
}
