package reports

import (
	"encoding/xml"
	"strings"
	"testing"
)

// junitIn is the JUnit XML as a CI system reads it back.
type junitIn struct {
	XMLName  xml.Name `xml:"testsuites"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Skipped  int      `xml:"skipped,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Cases    []struct {
			Name      string `xml:"name,attr"`
			Classname string `xml:"classname,attr"`
			Failure   *struct {
				Type    string `xml:"type,attr"`
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
				Body    string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct {
				Message string `xml:"message,attr"`
			} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func decodeJUnit(t *testing.T, r ScanResult) junitIn {
	t.Helper()
	out := render(t, "junit", r)
	if !strings.HasPrefix(string(out), xml.Header) {
		t.Error("JUnit output lacks the XML declaration")
	}
	var doc junitIn
	if err := xml.Unmarshal(out, &doc); err != nil {
		t.Fatalf("JUnit output is not valid XML: %v\n%s", err, out)
	}
	return doc
}

func TestJUnitParsesBack(t *testing.T) {
	doc := decodeJUnit(t, fixtureCases()["full"])
	// downtown: scan completed + rdp (fail), segment (fail), mfa (skipped), host (fail)
	// uptown: scan completed + snmp (fail), openssl (fail), tls (resolved: pass)
	if doc.Tests != 9 || doc.Failures != 5 || doc.Skipped != 1 || doc.Errors != 0 {
		t.Errorf("totals tests=%d failures=%d skipped=%d errors=%d, want 9/5/1/0",
			doc.Tests, doc.Failures, doc.Skipped, doc.Errors)
	}
	if len(doc.Suites) != 2 || doc.Suites[0].Name != "downtown" || doc.Suites[1].Name != "uptown" {
		t.Fatalf("suites = %+v, want downtown and uptown", doc.Suites)
	}
	for _, s := range doc.Suites {
		if len(s.Cases) == 0 || s.Cases[0].Name != "scan completed" || s.Cases[0].Failure != nil || s.Cases[0].Error != nil {
			t.Errorf("suite %s does not start with a passing \"scan completed\"", s.Name)
		}
		if s.Tests != len(s.Cases) {
			t.Errorf("suite %s: tests=%d but %d test cases", s.Name, s.Tests, len(s.Cases))
		}
	}
	var tls, snmp bool
	for _, c := range doc.Suites[1].Cases {
		switch c.Name {
		case "creds.snmp-public 10.20.9.2:161":
			snmp = true
			f := c.Failure
			if f == nil || f.Type != "critical" || f.Message != `SNMP answers to the community "public"` {
				t.Fatalf("snmp failure = %+v", f)
			}
			for _, want := range []string{"community: public", "Remediation: Disable SNMP", "Controls: hipaa:164.312(d), cpg:2.A"} {
				if !strings.Contains(f.Body, want) {
					t.Errorf("failure body lacks %q:\n%s", want, f.Body)
				}
			}
		case "tls.legacy-protocol 10.20.1.10:443":
			tls = true
			if c.Failure != nil || c.Skipped != nil {
				t.Error("a resolved finding must pass")
			}
		}
	}
	if !tls || !snmp {
		t.Error("uptown lacks its findings' test cases")
	}
}

// A clean scan still has a test per location; an incomplete one says so.
func TestJUnitCleanAndIncomplete(t *testing.T) {
	r := fixtureCases()["empty"]
	doc := decodeJUnit(t, r)
	if len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 1 {
		t.Fatalf("clean scan suites = %+v", doc.Suites)
	}
	c := doc.Suites[0].Cases[0]
	if c.Name != "scan completed" || c.Error == nil || !strings.Contains(c.Error.Body, "nmap: exit status 1") {
		t.Errorf("incomplete scan's \"scan completed\" = %+v", c)
	}

	r.Scan.Complete, r.Scan.Errors = true, nil
	doc = decodeJUnit(t, r)
	if doc.Tests != 1 || doc.Failures != 0 || doc.Errors != 0 {
		t.Errorf("complete clean scan: tests=%d failures=%d errors=%d, want 1/0/0", doc.Tests, doc.Failures, doc.Errors)
	}

	r.Scan.Locations = nil
	if doc = decodeJUnit(t, r); doc.Tests != 1 {
		t.Errorf("scan over no location has %d tests, want 1", doc.Tests)
	}
}

// Control characters are not allowed in XML 1.0; evidence copied from a
// banner may hold them, and the file must still parse.
func TestJUnitControlCharacters(t *testing.T) {
	r := fixtureCases()["full"]
	r.Findings[0].Evidence = map[string]any{"banner": "SSH-2.0\x00\x1b[31m\x07 ]]> \xff\xfe"}
	r.Findings[0].Title = "bad\x01title"
	r.Findings[0].Remediation = "close the <![CDATA[ section ]]> early"
	doc := decodeJUnit(t, r)
	found := false
	for _, s := range doc.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil && strings.Contains(c.Failure.Body, "section ]]> early") {
				found = true
			}
		}
	}
	if !found {
		t.Error("a body holding ]]> did not survive the round trip")
	}
}
