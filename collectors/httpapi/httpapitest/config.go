package httpapitest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
)

// Misconfig is a change that makes a valid configuration invalid, and what
// New's error must mention.
type Misconfig struct {
	Change func(*config.IdentitySource)
	Want   string
}

// CheckNew checks that newSource accepts ok as a Source called name, and
// refuses ok changed by each of bad, and by what every identity source
// refuses: no system, or another provider's type.
func CheckNew[S collectors.Collector](t *testing.T, newSource func(config.IdentitySource) (S, error), ok config.IdentitySource, name string, bad ...Misconfig) {
	t.Helper()
	s, err := newSource(ok)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != name {
		t.Errorf("Name = %q, want %q", s.Name(), name)
	}
	bad = append([]Misconfig{
		{Change: func(c *config.IdentitySource) { c.System = "" }, Want: "set system"},
		{Change: func(c *config.IdentitySource) { c.Type = "ldap" }, Want: "not " + ok.Type},
	}, bad...)
	for _, m := range bad {
		c := ok
		m.Change(&c)
		if _, err := newSource(c); err == nil || !strings.Contains(err.Error(), m.Want) {
			t.Errorf("New(%+v) = %v, want an error about %s", c, err, m.Want)
		}
	}
}

// Fixtures reads files from testdata, as fuzz seeds.
func Fixtures(tb testing.TB, names ...string) [][]byte {
	tb.Helper()
	out := make([][]byte, 0, len(names))
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
