package reports

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/vigilhq/vigil/observe"
)

// compileSARIFSchema compiles the official OASIS SARIF 2.1.0 schema (errata 01)
// kept in testdata, with format assertions on.
func compileSARIFSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "sarif-schema-2.1.0.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	const url = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func TestSARIFValidatesAgainstSchema(t *testing.T) {
	sch := compileSARIFSchema(t)
	for name, r := range fixtureCases() {
		out := render(t, "sarif", r)
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("%s: SARIF output does not validate: %v", name, err)
		}
	}

	// The validator must be able to fail, or the test above proves nothing.
	var log map[string]any
	if err := json.Unmarshal(render(t, "sarif", fixtureCases()["full"]), &log); err != nil {
		t.Fatal(err)
	}
	result := log["runs"].([]any)[0].(map[string]any)["results"].([]any)[0].(map[string]any)
	result["level"] = "fatal"
	if err := sch.Validate(log); err == nil {
		t.Error("schema accepted a result with level \"fatal\"")
	}
}

type sarifOut struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name           string `json:"name"`
				Version        string `json:"version"`
				InformationURI string `json:"informationUri"`
				Rules          []struct {
					ID                   string `json:"id"`
					Help                 struct{ Text, Markdown string }
					DefaultConfiguration struct{ Level string }
					Properties           map[string]any `json:"properties"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Invocations []struct {
			ExecutionSuccessful        bool  `json:"executionSuccessful"`
			ToolExecutionNotifications []any `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		Results []struct {
			RuleID              string `json:"ruleId"`
			RuleIndex           int    `json:"ruleIndex"`
			Kind                string `json:"kind"`
			Level               string `json:"level"`
			Message             struct{ Text string }
			PartialFingerprints map[string]string `json:"partialFingerprints"`
			BaselineState       string            `json:"baselineState"`
			Suppressions        []struct{ Kind, Status string }
			Locations           []struct {
				PhysicalLocation *struct {
					ArtifactLocation struct{ URI string }
				} `json:"physicalLocation"`
				LogicalLocations []struct {
					Name, Kind, FullyQualifiedName string
				} `json:"logicalLocations"`
			} `json:"locations"`
			Properties map[string]any `json:"properties"`
		} `json:"results"`
	} `json:"runs"`
}

func decodeSARIF(t *testing.T, r ScanResult) sarifOut {
	t.Helper()
	var out sarifOut
	if err := json.Unmarshal(render(t, "sarif", r), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Runs) != 1 {
		t.Fatalf("%d runs, want 1", len(out.Runs))
	}
	return out
}

func TestSARIFContent(t *testing.T) {
	out := decodeSARIF(t, fixtureCases()["full"])
	if out.Version != "2.1.0" || out.Schema != "https://json.schemastore.org/sarif-2.1.0.json" {
		t.Errorf("version %q schema %q", out.Version, out.Schema)
	}
	run := out.Runs[0]
	d := run.Tool.Driver
	if d.Name != "vigil" || d.Version != "0.1.0-test" || d.InformationURI == "" {
		t.Errorf("driver = %q %q %q", d.Name, d.Version, d.InformationURI)
	}
	if len(d.Rules) != 7 {
		t.Errorf("%d rules, want 7 (one synthesized for the rule without metadata)", len(d.Rules))
	}
	if len(run.Results) != 7 {
		t.Fatalf("%d results, want one per finding", len(run.Results))
	}

	byRule := map[string]int{}
	for i, res := range run.Results {
		byRule[res.RuleID] = i
		if res.RuleIndex < 0 || res.RuleIndex >= len(d.Rules) || d.Rules[res.RuleIndex].ID != res.RuleID {
			t.Errorf("result %d: ruleIndex %d does not point at rule %s", i, res.RuleIndex, res.RuleID)
		}
		if res.PartialFingerprints["vigilFindingId/v1"] == "" {
			t.Errorf("result %d has no vigilFindingId/v1 fingerprint", i)
		}
		for _, k := range []string{"location", "target", "category", "controls", "evidence", "status", "first_seen", "last_seen"} {
			if _, ok := res.Properties[k]; !ok {
				t.Errorf("result %d properties lack %q", i, k)
			}
		}
	}

	levels := map[string]string{
		"creds.snmp-public":            "error",
		"net.rdp-reachable-from-guest": "error",
		"net.segment-reachable":        "warning",
		"asset.unknown-host":           "note",
	}
	for rule, want := range levels {
		if got := run.Results[byRule[rule]].Level; got != want {
			t.Errorf("%s: level %q, want %q", rule, got, want)
		}
	}
	scores := map[string]string{}
	for _, rule := range d.Rules {
		scores[rule.ID], _ = rule.Properties["security-severity"].(string)
		if rule.Help.Text == "" || rule.Help.Markdown == "" {
			t.Errorf("rule %s has no help", rule.ID)
		}
	}
	for rule, want := range map[string]string{
		"creds.snmp-public": "9.5", "net.rdp-reachable-from-guest": "8.0", "net.segment-reachable": "5.5",
		"tls.legacy-protocol": "3.0", "asset.unknown-host": "0.0",
	} {
		if scores[rule] != want {
			t.Errorf("%s: security-severity %q, want %q", rule, scores[rule], want)
		}
	}

	rdp := run.Results[byRule["net.rdp-reachable-from-guest"]]
	if ll := rdp.Locations[0].LogicalLocations; rdp.Locations[0].PhysicalLocation != nil || len(ll) != 1 ||
		ll[0].Name != "10.10.2.5:3389" || ll[0].Kind != "resource" || ll[0].FullyQualifiedName != "downtown/10.10.2.5:3389" {
		t.Errorf("network finding location = %+v", rdp.Locations)
	}
	sw := run.Results[byRule["sw.known-vulnerability"]]
	if pl := sw.Locations[0].PhysicalLocation; pl == nil || pl.ArtifactLocation.URI != "sboms/front%20desk.cdx.json" {
		t.Errorf("software finding location = %+v", sw.Locations)
	}
	mfa := run.Results[byRule["idp.admin-without-mfa"]]
	if mfa.Locations[0].PhysicalLocation != nil {
		t.Error("an account with an @ in it was taken for a software target")
	}
	if len(mfa.Suppressions) != 1 || mfa.Suppressions[0].Status != "accepted" {
		t.Errorf("accepted finding suppressions = %+v", mfa.Suppressions)
	}
	if tls := run.Results[byRule["tls.legacy-protocol"]]; tls.Kind != "pass" || tls.Level != "none" {
		t.Errorf("resolved finding kind %q level %q, want pass/none", tls.Kind, tls.Level)
	}
	if rdp.BaselineState != "" {
		t.Error("baselineState set without a baseline")
	}

	based := decodeSARIF(t, fixtureCases()["baseline"]).Runs[0]
	states := map[string]int{}
	for _, res := range based.Results {
		states[res.BaselineState]++
	}
	if states["new"] != 4 || states["unchanged"] != 3 {
		t.Errorf("baseline states = %v, want 4 new and 3 unchanged", states)
	}

	empty := decodeSARIF(t, fixtureCases()["empty"]).Runs[0]
	if empty.Results == nil || len(empty.Results) != 0 {
		t.Error("clean scan must have an empty results array")
	}
	if inv := empty.Invocations[0]; inv.ExecutionSuccessful || len(inv.ToolExecutionNotifications) != 2 {
		t.Errorf("incomplete scan invocation = %+v", inv)
	}
}

func TestSoftwareTarget(t *testing.T) {
	tests := []struct {
		category, target, file, pkg string
		ok                          bool
	}{
		{"vulnerable-software", "go.sum:golang.org/x/net@v0.1.0", "go.sum", "golang.org/x/net@v0.1.0", true},
		{"vulnerable-software", "pom.xml:org.apache.logging.log4j:log4j-core@2.14.1", "pom.xml", "org.apache.logging.log4j:log4j-core@2.14.1", true},
		{"vulnerable-software", "package-lock.json:@babel/core@7.0.0", "package-lock.json", "@babel/core@7.0.0", true},
		{"vulnerable-software", `C:\sboms\app.json:openssl@3.0.0`, `C:\sboms\app.json`, "openssl@3.0.0", true},
		{"vulnerable-software", "10.1.2.3:22", "", "", false}, // a service version, found over the network
		{"missing-mfa", "m365:frontdesk@glow.example", "", "", false},
		{"vulnerable-software", ":pkg@1", "", "", false},
	}
	for _, tt := range tests {
		file, pkg, ok := softwareTarget(observe.Finding{Category: observe.Category(tt.category), Target: tt.target})
		if file != tt.file || pkg != tt.pkg || ok != tt.ok {
			t.Errorf("softwareTarget(%s %q) = %q, %q, %v; want %q, %q, %v", tt.category, tt.target, file, pkg, ok, tt.file, tt.pkg, tt.ok)
		}
	}
	for in, want := range map[string]string{
		"sboms/a b.json":         "sboms/a%20b.json",
		"/srv/app/go.sum":        "file:///srv/app/go.sum",
		`C:\sboms\app.json`:      "file:///C:/sboms/app.json",
		"weird:name/lock.json":   "./weird:name/lock.json",
		"dir/100%-done.cdx.json": "dir/100%25-done.cdx.json",
	} {
		if got := fileURI(in); got != want {
			t.Errorf("fileURI(%q) = %q, want %q", in, got, want)
		}
	}
}
