package httpapitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/observe"
)

// Golden compares obs, as indented JSON, with testdata/name; with update
// (the package's -update flag) it rewrites the file first.
func Golden(t testing.TB, name string, obs []observe.Observation, update bool) {
	t.Helper()
	got, err := json.MarshalIndent(obs, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", name)
	if update {
		if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(bytes.TrimSpace(want)) != string(got) {
		t.Errorf("observations differ from %s (go test -update to accept):\n%s", path, got)
	}
}

// Accounts are account observations' attributes by username.
type Accounts map[string]map[string]any

// ByUsername indexes account observations by username.
func ByUsername(obs []observe.Observation) Accounts {
	m := Accounts{}
	for _, o := range obs {
		m[o.Attrs[collectors.AttrUsername].(string)] = o.Attrs
	}
	return m
}

// Check fails t unless user's attribute key prints as want does.
func (a Accounts) Check(t testing.TB, user, key string, want any) {
	t.Helper()
	if got := a[user][key]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s.%s = %v, want %v", user, key, got, want)
	}
}
