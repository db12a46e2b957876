package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// From an identity scan to the register, a decision, and the trail: the
// commands a practice manager and an auditor run, against a real store.
func TestControlsRiskFindingsTrace(t *testing.T) {
	dir := t.TempDir()
	recent := time.Now().UTC().AddDate(0, 0, -3).Format(time.DateOnly)
	emr := filepath.Join(dir, "emr.csv")
	if err := os.WriteFile(emr, []byte("username,email,display_name,enabled,mfa,last_login,is_admin\n"+
		"admin,it@glow.example,EMR Admin,true,false,"+recent+",true\n"+
		"drkim,s.kim@glow.example,Sarah Kim,true,true,"+recent+",false\n"+
		"frontdesk,frontdesk@glow.example,Front Desk,true,false,"+recent+",false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`organization: Glow
data_dir: %q
locations:
  - {id: downtown, state: CA, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}
  - {id: austin, state: TX, segments: [{name: s, cidr: 127.0.0.2/32, role: servers}]}
identity: [{type: csv, system: emr, path: %q}]
`, filepath.Join(dir, "data"), emr))

	// Nothing stored yet: a clear error, not an empty report.
	if _, stderr, code := vigil(t, "controls", "--config", cfg); code != 2 || !strings.Contains(stderr, "vigil scan") {
		t.Fatalf("controls before any scan: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := vigil(t, "scan", "--config", cfg, "--only", "identity", "--fail-on", "critical"); code == 2 {
		t.Fatalf("scan: exit 2\n%s", stderr)
	}

	// Control status from the store.
	out, stderr, code := vigil(t, "controls", "--config", cfg, "--format", "json")
	if code != 0 {
		t.Fatalf("controls: exit %d\n%s", code, stderr)
	}
	var statuses []struct {
		Control struct{ ID string }
		Status  string
		Reasons []string
	}
	if err := json.Unmarshal([]byte(out), &statuses); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	verdict := map[string]string{}
	for _, s := range statuses {
		verdict[s.Control.ID] = s.Status
	}
	for id, want := range map[string]string{
		"hipaa:164.312(d)":           "gap",                 // admin without MFA in the EMR
		"hipaa:164.312(e)(1)":        "not-assessed",        // no network scan ran
		"hipaa:164.308(a)(1)(ii)(A)": "attestation-missing", // the risk analysis: no scan sees it
	} {
		if verdict[id] != want {
			t.Errorf("%s = %q, want %q", id, verdict[id], want)
		}
	}
	text, _, _ := vigil(t, "controls", "--config", cfg, "--location", "austin", "--framework", "state")
	if !strings.Contains(text, "location austin") || !strings.Contains(text, "state:") {
		t.Errorf("austin's state overlays:\n%s", text)
	}

	// The register: identity risks are organisation-wide.
	out, stderr, code = vigil(t, "risk", "list", "--config", cfg, "--format", "json")
	if code == 2 {
		t.Fatalf("risk list: exit 2\n%s", stderr)
	}
	var reg struct {
		Risks []struct {
			ID, Status, Level, Likelihood, Impact string
			Open                                  int
			Findings                              []struct{ ID, Target string }
		}
	}
	if err := json.Unmarshal([]byte(out), &reg); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	byID := map[string]int{}
	for i, r := range reg.Risks {
		byID[r.ID] = i
	}
	const adminRisk = "id.admin-without-mfa@organisation"
	i, ok := byID[adminRisk]
	if !ok {
		t.Fatalf("no %s in the register: %v", adminRisk, byID)
	}
	if r := reg.Risks[i]; r.Status != "open" || r.Level == "" || r.Open != 1 || r.Findings[0].Target != "emr:admin" {
		t.Errorf("admin risk = %+v", r)
	}
	if _, ok := byID["attestation:workforce-training"]; !ok {
		t.Errorf("the missing training attestation is not a risk: %v", byID)
	}
	csv, _, _ := vigil(t, "risk", "list", "--config", cfg, "--format", "csv")
	if !strings.HasPrefix(csv, "id,title,location,threat") || !strings.Contains(csv, adminRisk) {
		t.Errorf("csv register:\n%s", csv)
	}

	// Decisions need who, why and an expiry of at most a year.
	for _, args := range [][]string{
		{"risk", "accept", adminRisk, "--config", cfg, "--by", "Dr. Lee", "--reason", "r"},                       // no expiry
		{"risk", "accept", adminRisk, "--config", cfg, "--by", "Dr. Lee", "--reason", "r", "--for", "400"},       // too long
		{"risk", "accept", adminRisk, "--config", cfg, "--reason", "r", "--for", "30"},                           // nobody
		{"risk", "accept", "nope@downtown", "--config", cfg, "--by", "x", "--reason", "r", "--for", "30"},        // unknown risk
		{"risk", "set", adminRisk, "--config", cfg, "--by", "x", "--impact", "huge", "--reason", "r"},            // bad level
		{"risk", "set", adminRisk, "--config", cfg, "--by", "x", "--impact", "low"},                              // re-rating without reason
		{"findings", "accept", "ffff", "--config", cfg, "--by", "x", "--reason", "r", "--for", "30"},             // unknown finding
		{"findings", "false-positive", reg.Risks[i].Findings[0].ID, "--config", cfg, "--by", "x", "--for", "30"}, // no reason
	} {
		if _, stderr, code := vigil(t, args...); code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	if out, stderr, code := vigil(t, "risk", "set", adminRisk, "--config", cfg, "--by", "Dana", "--owner", "it@glow.example",
		"--treatment", "mitigate", "--due", "2030-01-31"); code != 0 || !strings.Contains(out, "owner it@glow.example") {
		t.Fatalf("risk set: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = vigil(t, "risk", "accept", adminRisk, "--config", cfg, "--by", "Dr. Lee",
		"--reason", "EMR vendor enables MFA in the next release", "--for", "60")
	if code != 0 || !strings.Contains(out, "1 findings accepted") {
		t.Fatalf("risk accept: exit %d\n%s%s", code, out, stderr)
	}
	out, _, _ = vigil(t, "findings", "list", "--config", cfg, "--status", "accepted")
	if !strings.Contains(out, "emr:admin") || !strings.Contains(out, "accepted by Dr. Lee until") {
		t.Errorf("accepted findings:\n%s", out)
	}
	out, _, _ = vigil(t, "risk", "list", "--config", cfg)
	if !strings.Contains(out, "accepted") || !strings.Contains(out, "it@glow.example") {
		t.Errorf("register after acceptance keeps the owner and shows accepted:\n%s", out)
	}

	// The trail: the risk's control, its finding with the account
	// observation behind it, the decisions, and evidence-log entries.
	out, stderr, code = vigil(t, "trace", "risk", adminRisk, "--config", cfg, "--format", "json")
	if code != 0 {
		t.Fatalf("trace: exit %d\n%s", code, stderr)
	}
	var tr struct {
		Controls []struct{ ID, Status string }
		Findings []struct {
			DetectedScan string `json:"detected_scan"`
			Decision     *struct{ By string }
			Observed     []struct {
				Observations []struct{ Kind string }
			}
			Evidence []struct{ Seq int64 }
		}
		Treatments []struct{ Treatment string }
		Evidence   []struct{ Kind string }
	}
	if err := json.Unmarshal([]byte(out), &tr); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(tr.Controls) == 0 || len(tr.Findings) != 1 || len(tr.Treatments) != 2 || len(tr.Evidence) != 2 {
		t.Fatalf("trace = %s", out)
	}
	f := tr.Findings[0]
	if f.DetectedScan == "" || f.Decision == nil || f.Decision.By != "Dr. Lee" || len(f.Evidence) < 3 ||
		len(f.Observed) == 0 || len(f.Observed[0].Observations) != 1 || f.Observed[0].Observations[0].Kind != "account" {
		t.Errorf("finding trace = %+v", f)
	}
	out, _, code = vigil(t, "trace", "control", "hipaa:164.312(d)", "--config", cfg)
	if code != 0 || !strings.Contains(out, "RISK "+adminRisk) || !strings.Contains(out, "observed") || !strings.Contains(out, "evidence log:") {
		t.Errorf("trace control text:\n%s", out)
	}
	if _, stderr, code := vigil(t, "trace", "control", "hipaa:999", "--config", cfg); code != 2 || !strings.Contains(stderr, "no control") {
		t.Errorf("unknown control: exit %d %s", code, stderr)
	}

	// Reopen, then time to remediate reads the same history.
	if out, stderr, code := vigil(t, "findings", "reopen", reg.Risks[i].Findings[0].ID[:8], "--config", cfg, "--by", "Dana",
		"--reason", "vendor slipped"); code != 0 || !strings.Contains(out, " open ") {
		t.Errorf("reopen: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = vigil(t, "findings", "ttr", "--config", cfg, "--format", "json")
	if code != 0 || !strings.Contains(out, `"missing-mfa"`) || !strings.Contains(out, `"organisation"`) {
		t.Errorf("ttr:\n%s", out)
	}
}
