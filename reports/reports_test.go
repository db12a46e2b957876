package reports

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// The fixture's clock is outside UTC so the tests see every writer convert.
var (
	clinicTZ  = time.FixedZone("EST", -5*60*60)
	scanStart = time.Date(2025, 3, 4, 2, 0, 0, 0, clinicTZ)
	firstSeen = time.Date(2025, 1, 15, 2, 0, 3, 0, clinicTZ)
)

func finding(rule string, cat observe.Category, sev observe.Severity, loc, target, title string,
	controls []string, evidence map[string]any, remediation string, status observe.Status) observe.Finding {
	return observe.Finding{
		ID:          observe.FindingID(rule, loc, target),
		Rule:        rule,
		Category:    cat,
		Severity:    sev,
		Title:       title,
		Location:    loc,
		Target:      target,
		Controls:    controls,
		Evidence:    evidence,
		Remediation: remediation,
		FirstSeen:   firstSeen,
		LastSeen:    scanStart.Add(75 * time.Second),
		Status:      status,
	}
}

// fixtureFindings covers every target form, every severity, every status
// and text that XML, JSON and a table each need to escape or flatten.
func fixtureFindings() []observe.Finding {
	return []observe.Finding{
		finding("net.rdp-reachable-from-guest", "exposed-service", observe.High, "downtown", "10.10.2.5:3389",
			"Remote Desktop reachable from the guest network",
			[]string{"hipaa:164.312(a)(1)", "hipaa:164.312(e)(1)", "insurance:rdp-exposed"},
			map[string]any{"seen_from": "guest", "service": "ms-wbt-server"},
			"Block TCP 3389 from the guest segment; reach RDP only through the VPN.", observe.StatusOpen),
		finding("creds.snmp-public", "default-credentials", observe.Critical, "uptown", "10.20.9.2:161",
			`SNMP answers to the community "public"`,
			[]string{"hipaa:164.312(d)", "cpg:2.A"},
			map[string]any{"community": "public", "version": "v2c"},
			"Disable SNMP v1/v2c or set a long random community.", observe.StatusOpen),
		finding("net.segment-reachable", "flat-network", observe.Medium, "downtown", "guest->clinical",
			"Guest network reaches the clinical network",
			[]string{"hipaa:164.312(e)(1)", "insurance:segmentation"},
			map[string]any{"open_ports": []any{445, 3389}, "seen_from": "guest"},
			"Add a firewall rule that drops guest -> clinical traffic.", observe.StatusOpen),
		finding("idp.admin-without-mfa", "missing-mfa", observe.High, "downtown", "m365:frontdesk@glow.example",
			"Administrator signs in without a second factor",
			[]string{"hipaa:164.312(d)", "insurance:mfa-admin"},
			map[string]any{"is_admin": true, "mfa": "false"},
			"Register and enforce MFA for the account.", observe.StatusAccepted),
		finding("sw.known-vulnerability", "vulnerable-software", observe.High, "uptown", "sboms/front desk.cdx.json:openssl@1.1.1k",
			"openssl 1.1.1k has a known vulnerability",
			[]string{"hipaa:164.308(a)(1)(ii)(B)", "insurance:eol-software"},
			map[string]any{"cve": "CVE-2023-0286", "fixed_in": "1.1.1t"},
			"Upgrade openssl to 1.1.1t or later.", observe.StatusOpen),
		finding("tls.legacy-protocol", "weak-tls", observe.Low, "uptown", "10.20.1.10:443",
			`Server accepts TLS 1.0 & "export" ciphers <legacy>`,
			[]string{"hipaa:164.312(e)(1)"},
			map[string]any{"protocols": []any{"TLSv1.0"}},
			"Allow TLS 1.2 and later only.", observe.StatusResolved),
		finding("asset.unknown-host", "unknown-asset", observe.Info, "downtown", "10.10.1.77",
			"Host not in the asset inventory",
			nil, nil, "", observe.StatusOpen),
	}
}

// fixtureRules describes every fixture rule but asset.unknown-host, which
// writers must then describe from its finding.
func fixtureRules() []observe.RuleMeta {
	var rules []observe.RuleMeta
	for _, f := range fixtureFindings() {
		if f.Rule == "asset.unknown-host" {
			continue
		}
		rules = append(rules, observe.RuleMeta{
			ID: f.Rule, Category: f.Category, Severity: f.Severity, Title: f.Title,
			Description: "Why it matters: " + f.Title + ".",
			Remediation: f.Remediation, Controls: f.Controls,
		})
	}
	return rules
}

func fixtureScan() observe.Scan {
	return observe.Scan{
		ID:         "scan-20250304-0200",
		StartedAt:  scanStart,
		FinishedAt: scanStart.Add(92 * time.Second),
		Version:    "0.1.0-test",
		Locations:  []string{"uptown", "downtown"},
		Complete:   true,
	}
}

// fixtureBaseline holds the ids of the findings a previous scan had.
func fixtureBaseline() map[string]bool {
	base := map[string]bool{"id-of-a-finding-since-fixed": true}
	for _, f := range fixtureFindings() {
		switch f.Rule {
		case "net.rdp-reachable-from-guest", "net.segment-reachable", "tls.legacy-protocol":
			base[f.ID] = true
		}
	}
	return base
}

// fixtureCases are the scan results every writer is run over.
func fixtureCases() map[string]ScanResult {
	incomplete := observe.Scan{
		ID:         "scan-20250305-0200",
		StartedAt:  scanStart.Add(24 * time.Hour),
		FinishedAt: scanStart.Add(24*time.Hour + 500*time.Millisecond),
		Version:    "0.1.0-test",
		Locations:  []string{"downtown"},
		Complete:   false,
		Errors:     []string{"nmap: exit status 1", "tls: 10.10.1.5:443: i/o timeout"},
	}
	return map[string]ScanResult{
		"full": {Scan: fixtureScan(), Findings: fixtureFindings(), Rules: fixtureRules()},
		"baseline": {Scan: fixtureScan(), Findings: fixtureFindings(), Rules: fixtureRules(),
			New: MarkNew(fixtureFindings(), fixtureBaseline())},
		"empty": {Scan: incomplete},
	}
}

// goldenExt names each format's golden file.
var goldenExt = map[string]string{"json": ".json", "sarif": ".sarif", "junit": ".junit.xml", "text": ".txt"}

func render(t testing.TB, format string, r ScanResult) []byte {
	t.Helper()
	w, err := WriterFor(format)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := w.Write(&b, r); err != nil {
		t.Fatalf("%s: %v", format, err)
	}
	return b.Bytes()
}

func TestWritersGolden(t *testing.T) {
	for name, r := range fixtureCases() {
		for _, format := range Formats() {
			t.Run(name+"/"+format, func(t *testing.T) {
				got := render(t, format, r)
				path := filepath.Join("testdata", "golden", name+goldenExt[format])
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run: go test ./reports -update)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("output differs from %s (run go test ./reports -update and review the diff):\n%s", path, got)
				}
			})
		}
	}
}

// The same findings in any order must give the same bytes, or every CI run
// would show a spurious diff; and writing must not reorder the caller's slice.
func TestWritersDeterministic(t *testing.T) {
	r := fixtureCases()["baseline"]
	shuffled := r
	shuffled.Findings = slices.Clone(r.Findings)
	slices.Reverse(shuffled.Findings)
	shuffled.Rules = slices.Clone(r.Rules)
	slices.Reverse(shuffled.Rules)
	before := slices.Clone(shuffled.Findings)
	for _, format := range Formats() {
		if a, b := render(t, format, r), render(t, format, shuffled); !bytes.Equal(a, b) {
			t.Errorf("%s: output depends on input order", format)
		}
	}
	for i := range before {
		if before[i].ID != shuffled.Findings[i].ID {
			t.Fatal("writers reordered the caller's findings")
		}
	}
}

func TestWriterFor(t *testing.T) {
	for _, name := range []string{"json", "sarif", "junit", "text", " JSON ", "Sarif"} {
		if w, err := WriterFor(name); err != nil || w == nil {
			t.Errorf("WriterFor(%q) = %v, %v", name, w, err)
		}
	}
	_, err := WriterFor("xml")
	if !errors.Is(err, ErrUnknownFormat) {
		t.Fatalf("WriterFor(xml) error = %v, want ErrUnknownFormat", err)
	}
	for _, name := range Formats() {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not list format %q", err, name)
		}
	}
	if got, want := Formats(), []string{"json", "sarif", "junit", "text"}; !slices.Equal(got, want) {
		t.Errorf("Formats() = %v, want %v", got, want)
	}
	Formats()[0] = "mutated"
	if Formats()[0] != "json" {
		t.Error("Formats returns shared state")
	}
}

func TestSummary(t *testing.T) {
	empty := Summary(nil)
	if len(empty) != 5 {
		t.Fatalf("Summary(nil) has %d keys, want all 5 severities: %v", len(empty), empty)
	}
	for _, s := range observe.Severities {
		if v, ok := empty[s]; !ok || v != 0 {
			t.Errorf("Summary(nil)[%s] = %d, %v", s, v, ok)
		}
	}
	got := Summary(append(fixtureFindings(), observe.Finding{Severity: "urgent"}))
	want := map[observe.Severity]int{"critical": 1, "high": 3, "medium": 1, "low": 1, "info": 1}
	for s, n := range want {
		if got[s] != n {
			t.Errorf("Summary[%s] = %d, want %d", s, got[s], n)
		}
	}
	if len(got) != 5 {
		t.Errorf("Summary counted an invalid severity: %v", got)
	}
}

func TestMarkNew(t *testing.T) {
	fs := fixtureFindings()
	if MarkNew(fs, nil) != nil {
		t.Error("MarkNew without a baseline must be nil (no baseline given)")
	}
	all := map[string]bool{}
	for _, f := range fs {
		all[f.ID] = true
	}
	if got := MarkNew(fs, all); got == nil || len(got) != 0 {
		t.Errorf("MarkNew with everything known = %v, want empty non-nil", got)
	}
	got := MarkNew(fs, fixtureBaseline())
	if len(got) != 4 {
		t.Errorf("MarkNew marked %d new, want 4: %v", len(got), got)
	}
	for _, f := range fs {
		if got[f.ID] == fixtureBaseline()[f.ID] {
			t.Errorf("%s: new=%v but in baseline=%v", f.Rule, got[f.ID], fixtureBaseline()[f.ID])
		}
	}
}

func TestFailCount(t *testing.T) {
	fs := fixtureFindings()
	// Open findings: critical snmp, high rdp, high openssl (new), medium
	// segment, info host. Accepted high MFA and resolved low TLS never count.
	baseline := MarkNew(fs, fixtureBaseline()) // new: snmp, mfa (accepted), openssl, host
	noStatus := fs[0]
	noStatus.Status = ""
	tests := []struct {
		name     string
		findings []observe.Finding
		fresh    map[string]bool
		failOn   observe.Severity
		want     int
	}{
		{"no findings", nil, nil, observe.High, 0},
		{"critical, no baseline", fs, nil, observe.Critical, 1},
		{"high, no baseline", fs, nil, observe.High, 3},
		{"medium, no baseline", fs, nil, observe.Medium, 4},
		{"low, no baseline", fs, nil, observe.Low, 4},
		{"info, no baseline", fs, nil, observe.Info, 5},
		{"critical, baseline", fs, baseline, observe.Critical, 1},
		{"high, baseline", fs, baseline, observe.High, 2},
		{"info, baseline", fs, baseline, observe.Info, 3},
		{"baseline given, nothing new", fs, map[string]bool{}, observe.Info, 0},
		{"invalid fail-on counts everything open", fs, nil, "urgent", 5},
		{"missing status counts as open", []observe.Finding{noStatus}, nil, observe.High, 1},
		{"accepted never counts", fs[3:4], nil, observe.Info, 0},
		{"resolved never counts", fs[5:6], nil, observe.Info, 0},
		{"false positive never counts",
			[]observe.Finding{{ID: "x", Severity: observe.Critical, Status: observe.StatusFalsePositive}}, nil, observe.Info, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FailCount(ScanResult{Findings: tt.findings, New: tt.fresh}, tt.failOn)
			if got != tt.want {
				t.Errorf("FailCount(--fail-on %s) = %d, want %d", tt.failOn, got, tt.want)
			}
		})
	}
}

func TestTextWriter(t *testing.T) {
	cases := fixtureCases()
	empty := string(render(t, "text", cases["empty"]))
	for _, want := range []string{"No findings.", "INCOMPLETE", "nmap: exit status 1", "duration   500ms"} {
		if !strings.Contains(empty, want) {
			t.Errorf("clean incomplete scan text lacks %q:\n%s", want, empty)
		}
	}
	full := string(render(t, "text", cases["full"]))
	lines := strings.Split(strings.TrimSpace(full), "\n")
	if got, want := lines[len(lines)-1], "7 findings: 1 critical, 3 high, 1 medium, 1 low, 1 info"; got != want {
		t.Errorf("footer = %q, want %q", got, want)
	}
	if strings.Contains(full, "\x1b") {
		t.Error("text output contains escape codes")
	}
	// downtown comes before uptown, and within a location critical before info.
	if strings.Index(full, "downtown:") > strings.Index(full, "uptown:") {
		t.Error("locations are not in order")
	}
	if strings.Index(full, "creds.snmp-public") > strings.Index(full, "tls.legacy-protocol") {
		t.Error("uptown's critical finding is not listed before its low one")
	}
	base := string(render(t, "text", cases["baseline"]))
	if !strings.Contains(base, "(4 new since the baseline)") || !strings.Contains(base, "[new]") {
		t.Errorf("baseline text does not mark new findings:\n%s", base)
	}
}

func TestMatrixInJSONAndText(t *testing.T) {
	m := observe.Matrix{Location: "downtown", Segments: []string{"guest", "clinical"}, Vantages: []string{"guest"},
		Cells: []observe.MatrixCell{
			{From: "guest", To: "clinical", Status: observe.CellViolation, Reached: []observe.Reach{{Host: "10.0.2.5", Port: 3389, Proto: "tcp", Service: "ms-wbt-server"}}},
			{From: "clinical", To: "guest", Status: observe.CellNotAssessed},
		}}
	r := ScanResult{Scan: observe.Scan{ID: "s1", Locations: []string{"downtown"}, Complete: true}, Matrices: []observe.Matrix{m}}
	var jb, tb bytes.Buffer
	if err := (JSONWriter{}).Write(&jb, r); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(jb.Bytes(), []byte(`"status": "reachable-against-policy"`)) || !bytes.Contains(jb.Bytes(), []byte(`"matrix"`)) {
		t.Errorf("JSON lacks the matrix:\n%s", jb.String())
	}
	if err := (TextWriter{}).Write(&tb, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Reachability at downtown", "OPEN!", "n/a"} {
		if !bytes.Contains(tb.Bytes(), []byte(want)) {
			t.Errorf("text lacks %q:\n%s", want, tb.String())
		}
	}
}

// Findings about accounts and software have no location: every format
// names them as the organisation's rather than printing an empty name.
func TestOrganisationWideFindings(t *testing.T) {
	f := observe.Finding{ID: "x", Rule: "id.no-mfa", Category: "missing-mfa", Severity: observe.Medium, Title: "Account has no second factor",
		Target: "emr:jane", Controls: []string{"hipaa:164.312(d)"}, Evidence: map[string]any{"system": "emr"}, Status: observe.StatusOpen}
	r := ScanResult{Scan: observe.Scan{ID: "s1", Complete: true, Sources: []string{"csv:emr"}}, Findings: []observe.Finding{f}}
	for format, want := range map[string]string{
		"junit": `<testsuite name="organisation"`,
		"sarif": `"fullyQualifiedName": "organisation/emr:jane"`,
		"text":  "organisation-wide (accounts, software): 1 finding",
	} {
		w, err := WriterFor(format)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := w.Write(&b, r); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("%s output lacks %q:\n%s", format, want, b.String())
		}
	}
}
