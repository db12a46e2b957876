package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

func agentAdmin(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = runAgentAdmin(context.Background(), args, &o, &e)
	return o.String(), e.String(), code
}

// token create → list → revoke, and bad input exits 2 with the reason.
func TestAgentAdmin(t *testing.T) {
	cfg, dataDir := attestConfig(t)
	out, stderr, code := agentAdmin(t, "token", "create", "--config", cfg, "--location", "austin", "--server", "https://vigil.msp.example:8443")
	if code != 0 {
		t.Fatalf("token create: exit %d\n%s", code, stderr)
	}
	tok, err := protocol.ParseToken(strings.TrimSpace(out))
	if err != nil || tok.Tenant != "t" {
		t.Fatalf("token create printed %q: %v", out, err)
	}
	if !strings.Contains(stderr, "vigil agent --server https://vigil.msp.example:8443 --token "+tok.String()) {
		t.Errorf("no copy-paste command:\n%s", stderr)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "--config", cfg, "--location", "nowhere"}, `"nowhere" is not in`},
		{[]string{"token", "create", "--config", cfg}, "--location is required"},
		{[]string{"token", "create", "--config", cfg, "--location", "austin", "--expires", "0s"}, "--expires"},
		{[]string{"token", "mint"}, "token create"},
		{[]string{"revoke", "--config", cfg}, "which agent"},
		{[]string{"revoke", "ag-nobody", "--config", cfg}, `no agent "ag-nobody"`},
		{[]string{"list", "--config", cfg, "--format", "xml"}, "--format"},
	} {
		if _, stderr, code := agentAdmin(t, tc.args...); code != exitError || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 naming %q", tc.args, code, stderr, tc.want)
		}
	}

	// Nobody enrolled yet: an empty list.
	out, _, code = agentAdmin(t, "list", "--config", cfg, "--format", "json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("list before enrollment: exit %d %q", code, out)
	}
	if ok, _ := regexp.MatchString(`^vge1\.[a-z0-9-]+\.[A-Za-z0-9_-]{32,}$`, tok.String()); !ok {
		t.Errorf("token %q does not look like one", tok)
	}

	// An agent enrolls with it (as agentsrv does), then is listed and revoked.
	st, err := sqlite.Open(context.Background(), filepath.Join(dataDir, store.DefaultFileName))
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.EnrollAgent(context.Background(), tok.Hash(), store.Agent{Hostname: "sensor-1", PublicKey: make([]byte, 32)})
	st.Close()
	if err != nil || a.Location != "austin" {
		t.Fatalf("enroll: %+v, %v", a, err)
	}
	out, _, _ = agentAdmin(t, "list", "--config", cfg)
	if !strings.Contains(out, a.ID) || !strings.Contains(out, "sensor-1") || !strings.Contains(out, " ok") {
		t.Errorf("list:\n%s", out)
	}
	if out, stderr, code := agentAdmin(t, "revoke", a.ID, "--config", cfg, "--by", "Dana"); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("revoke: exit %d %s%s", code, out, stderr)
	}
	out, _, _ = agentAdmin(t, "list", "--config", cfg, "--format", "json")
	var rows []struct {
		ID, Status, RevokedBy string `json:",omitempty"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0].Status != "revoked" {
		t.Errorf("list after revoke: %s (%v)", out, err)
	}
}
