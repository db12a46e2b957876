package software

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

var _ collectors.Collector = (*Scanner)(nil)

// testDB builds the offline database from the shipped records.
func testDB(t testing.TB) string {
	t.Helper()
	db := t.TempDir()
	if err := BuildDB("testdata/osv", db); err != nil {
		t.Fatal(err)
	}
	return db
}

// testSite copies the shipped inputs into a directory laid out like a
// customer's, with a saved Debian 12 image in images/, and returns it.
func testSite(t testing.TB) string {
	t.Helper()
	site := t.TempDir()
	err := filepath.WalkDir("testdata/inputs", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/inputs", p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(site, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(site, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(site, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeImage(t, filepath.Join(site, "images", "kiosk.tar"))
	return site
}

// writeImage writes a one-layer `docker save` tarball of a Debian 12
// system with the openssh-server bookworm first shipped (1:9.2p1-2,
// before DSA-5586-1 and DSA-5724-1) and a libc6 no record mentions.
func writeImage(t testing.TB, path string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name, body string) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add("etc/os-release", `PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
`)
	add("var/lib/dpkg/status", `Package: openssh-server
Status: install ok installed
Priority: optional
Section: net
Architecture: amd64
Source: openssh
Version: 1:9.2p1-2
Description: secure shell (SSH) server, for secure access from remote machines

Package: openssh-client
Status: install ok installed
Priority: standard
Section: net
Architecture: amd64
Source: openssh
Version: 1:9.2p1-2
Description: secure shell (SSH) client, for secure access to remote machines

Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

`)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag("registry.example/glow/checkin-kiosk:2.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
}

func newScanner(site, db string, paths ...string) *Scanner {
	cfg := &config.Config{Path: filepath.Join(site, "vigil.yaml"), OSVDB: db}
	for _, p := range paths {
		cfg.Software = append(cfg.Software, config.SoftwareSource{Path: filepath.Join(site, p)})
	}
	return New(cfg)
}

// want is one expected observation: its target and what a reader of the
// finding relies on.
type want struct {
	target, severity string
	vulns, cves      []string
	cvss             float64
	fixed            []string
}

func got(t *testing.T, obs []observe.Observation) map[string]want {
	t.Helper()
	out := map[string]want{}
	for _, o := range obs {
		if o.Kind != observe.KindPackage || o.Source != "osv-scanner" {
			t.Errorf("observation %+v: kind %s source %s", o, o.Kind, o.Source)
		}
		if _, dup := out[o.Target()]; dup {
			t.Errorf("two observations for %s", o.Target())
		}
		w := want{target: o.Target()}
		w.severity, _ = o.Attrs[AttrSeverity].(string)
		w.vulns, _ = o.Attrs[AttrVulns].([]string)
		w.cves, _ = o.Attrs[AttrAliases].([]string)
		w.cvss, _ = o.Attrs[AttrCVSS].(float64)
		w.fixed, _ = o.Attrs[AttrFixedVersions].([]string)
		out[w.target] = w
	}
	return out
}

func compare(t *testing.T, obs []observe.Observation, wants []want) {
	t.Helper()
	g := got(t, obs)
	for _, w := range wants {
		x, ok := g[w.target]
		if !ok {
			t.Errorf("missing %s; got %v", w.target, slices.Sorted(mapsKeys(g)))
			continue
		}
		delete(g, w.target)
		if !slices.Equal(x.vulns, w.vulns) || !slices.Equal(x.cves, w.cves) || x.severity != w.severity {
			t.Errorf("%s: vulns %v cves %v severity %s; want %v %v %s", w.target, x.vulns, x.cves, x.severity, w.vulns, w.cves, w.severity)
		}
		if w.cvss != 0 && (x.cvss < w.cvss-0.05 || x.cvss > w.cvss+0.05) {
			t.Errorf("%s: cvss %.1f, want %.1f", w.target, x.cvss, w.cvss)
		}
		if w.fixed != nil && !slices.Equal(x.fixed, w.fixed) {
			t.Errorf("%s: fixed %v, want %v", w.target, x.fixed, w.fixed)
		}
	}
	for k := range g {
		t.Errorf("unexpected observation %s", k)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var (
	wantGoNet = want{target: "app/go.mod:golang.org/x/net@0.15.0", severity: "unknown",
		vulns: []string{"GO-2023-2102"}, cves: []string{"CVE-2023-39325"}, fixed: []string{"0.17.0"}}
	wantLodash = want{target: "web/package-lock.json:lodash@4.17.20", severity: "high", cvss: 7.2,
		vulns: []string{"GHSA-35jh-r3h4-6jhm"}, cves: []string{"CVE-2021-23337"}, fixed: []string{"4.17.21"}}
	wantRequests = want{target: "py/requirements.txt:requests@2.28.1", severity: "medium", cvss: 6.1,
		vulns: []string{"GHSA-j8r2-6x86-q33q"}, cves: []string{"CVE-2023-32681"}, fixed: []string{"2.31.0"}}
	wantCryptoSBOM = want{target: "sbom/kiosk.cdx.json:golang.org/x/crypto@v0.14.0", severity: "unknown",
		vulns: []string{"GO-2023-2402"}, cves: []string{"CVE-2023-48795"}, fixed: []string{"0.17.0"}}
	wantMinimist = want{target: "sbom/kiosk.cdx.json:minimist@1.2.5", severity: "critical", cvss: 9.8,
		vulns: []string{"GHSA-xvch-5gv4-984h"}, cves: []string{"CVE-2021-44906"}, fixed: []string{"0.2.4", "1.2.6"}}
	wantWerkzeug = want{target: "sbom/booking.spdx.json:werkzeug@2.2.2", severity: "high", cvss: 7.5,
		vulns: []string{"GHSA-2g68-c3qc-8985"}, cves: []string{"CVE-2024-34069"}, fixed: []string{"3.0.3"}}
	wantImage = want{target: "images/kiosk.tar:openssh@1:9.2p1-2", severity: "high", cvss: 8.1,
		vulns: []string{"DSA-5586-1", "DSA-5724-1"},
		cves:  []string{"CVE-2021-41617", "CVE-2023-28531", "CVE-2023-48795", "CVE-2023-51384", "CVE-2023-51385", "CVE-2024-6387"},
		fixed: []string{"1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u3"}}
)

// Each input type yields exactly its vulnerable packages: fixed versions
// (x/crypto 0.17.0, minimist 1.2.8, lodash 4.17.21, Werkzeug 3.0.3, flask
// 2.3.2, requests 2.31.0), packages no record names (x/text, left-pad,
// six, glibc) and the withdrawn record on requests and openssh yield
// nothing.
func TestCollectInputTypes(t *testing.T) {
	db := testDB(t)
	site := testSite(t)
	cases := []struct {
		name  string
		paths []string
		want  []want
	}{
		{"go.mod in a directory", []string{"app"}, []want{wantGoNet}},
		{"package-lock.json", []string{"web/package-lock.json"}, []want{wantLodash}},
		{"requirements.txt", []string{"py/requirements.txt"}, []want{wantRequests}},
		{"CycloneDX SBOM", []string{"sbom/kiosk.cdx.json"}, []want{wantCryptoSBOM, wantMinimist}},
		{"SPDX SBOM", []string{"sbom/booking.spdx.json"}, []want{wantWerkzeug}},
		{"docker save tarball", []string{"images/kiosk.tar"}, []want{wantImage}},
		{"tarball at the top of a directory", []string{"images"}, []want{wantImage}},
		{"everything", []string{"app", "web/package-lock.json", "py", "sbom", "images/kiosk.tar"},
			[]want{wantGoNet, wantLodash, wantRequests, wantCryptoSBOM, wantMinimist, wantWerkzeug, wantImage}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newScanner(site, db, tc.paths...)
			obs, err := s.Collect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			compare(t, obs, tc.want)
		})
	}
}

func TestImageObservationAttributes(t *testing.T) {
	s := newScanner(testSite(t), testDB(t), "images/kiosk.tar")
	obs, err := s.Collect(context.Background())
	if err != nil || len(obs) != 1 {
		t.Fatalf("%v %v", obs, err)
	}
	a := obs[0].Attrs
	if a[AttrEcosystem] != "Debian:12" || a[AttrImagePath] != "var/lib/dpkg/status" || a[AttrFile] != "images/kiosk.tar" ||
		!slices.Equal(a[AttrBinaryPackages].([]string), []string{"openssh-client", "openssh-server"}) ||
		!strings.Contains(a[AttrSummary].(string), "openssh") {
		t.Errorf("attrs %v", a)
	}
}

// An ecosystem without a database is a clear error, and the other
// ecosystems are still matched (osv-scanner alone would stop at the
// first missing one and report nothing).
func TestMissingDatabase(t *testing.T) {
	site := testSite(t)
	t.Run("none at all", func(t *testing.T) {
		s := newScanner(site, filepath.Join(t.TempDir(), "osv"), "app", "web/package-lock.json")
		obs, err := s.Collect(context.Background())
		if !errors.Is(err, ErrNoDatabase) {
			t.Fatalf("err %v", err)
		}
		for _, frag := range []string{"Go, npm", "https://osv-vulnerabilities.storage.googleapis.com/Go/all.zip", "docs/software.md", "scripts/refresh-osv-db.sh"} {
			if !strings.Contains(err.Error(), frag) {
				t.Errorf("error %q lacks %q", err, frag)
			}
		}
		if len(obs) != 0 {
			t.Errorf("observations without a database: %v", obs)
		}
	})
	t.Run("one missing", func(t *testing.T) {
		db := testDB(t)
		if err := os.RemoveAll(filepath.Join(db, "osv-scanner", "Go")); err != nil {
			t.Fatal(err)
		}
		s := newScanner(site, db, "sbom/kiosk.cdx.json")
		obs, err := s.Collect(context.Background())
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "for Go in") {
			t.Fatalf("err %v", err)
		}
		compare(t, obs, []want{wantMinimist})
	})
	t.Run("osv-scanner's own layout", func(t *testing.T) {
		db := testDB(t)
		if err := os.Rename(filepath.Join(db, "osv-scanner"), filepath.Join(db, "osv-scalibr")); err != nil {
			t.Fatal(err)
		}
		obs, err := newScanner(site, db, "web").Collect(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		compare(t, obs, []want{wantLodash})
	})
}

// A path that cannot be read is an error naming it; the others are still
// scanned.
func TestUnreadablePath(t *testing.T) {
	site := testSite(t)
	if err := os.MkdirAll(filepath.Join(site, "bad"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(site, "bad", "package-lock.json"), []byte("{not json"), 0o644)
	os.WriteFile(filepath.Join(site, "bad", "notes.txt"), []byte("hello"), 0o644)
	paths := []string{"gone/package-lock.json", "bad/package-lock.json", "bad/notes.txt", "web/package-lock.json"}
	if os.Geteuid() != 0 {
		os.WriteFile(filepath.Join(site, "bad", "locked.json"), []byte("{}"), 0o000)
		paths = append(paths, "bad/locked.json")
	}
	s := newScanner(site, testDB(t), paths...)
	obs, err := s.Collect(context.Background())
	if err == nil {
		t.Fatal("no error")
	}
	for _, p := range paths {
		if p == "web/package-lock.json" {
			continue
		}
		if !strings.Contains(err.Error(), "software "+p+":") {
			t.Errorf("error does not name %s:\n%v", p, err)
		}
	}
	if strings.Contains(err.Error(), "web/package-lock.json") {
		t.Errorf("error names the good path: %v", err)
	}
	compare(t, obs, []want{wantLodash})
}

// No byte leaves the sensor: with every proxy variable pointing at a
// listener that counts connections, a scan of every input type (image
// included) makes none, and osv-scanner never reaches the refusing
// transport.
func TestNoNetwork(t *testing.T) {
	var hits atomic.Int64
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "offline", http.StatusForbidden)
	}))
	defer trap.Close()
	for _, v := range []string{"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"} {
		t.Setenv(v, trap.URL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")
	s := newScanner(testSite(t), testDB(t), "app", "web", "py", "sbom", "images")
	obs, err := s.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(obs) != 7 {
		t.Errorf("%d observations", len(obs))
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d connections reached the proxy", n)
	}
	if n := s.refused.Load(); n != 0 {
		t.Errorf("osv-scanner attempted %d requests", n)
	}
	// and the transport does refuse
	c := &http.Client{Transport: offline{&s.refused}}
	if _, err := c.Get(trap.URL); !errors.Is(err, errNetwork) || s.refused.Load() != 1 || hits.Load() != 0 {
		t.Errorf("transport let a request through: %v", err)
	}
}

// Paths are shown as the configuration wrote them, whether vigil was
// started with a relative or an absolute configuration path.
func TestRelativeConfigPath(t *testing.T) {
	site, db := testSite(t), testDB(t)
	t.Chdir(site)
	rel, err := filepath.Rel(site, db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Path: "vigil.yaml", OSVDB: rel, Software: []config.SoftwareSource{{Path: "web"}, {Path: "images/kiosk.tar"}}}
	obs, err := New(cfg).Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	compare(t, obs, []want{wantLodash, wantImage})
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	obs, err := newScanner(testSite(t), testDB(t), "web").Collect(ctx)
	if !errors.Is(err, context.Canceled) || len(obs) != 0 {
		t.Errorf("%v %v", obs, err)
	}
}

func TestBuildDB(t *testing.T) {
	db := testDB(t)
	var ecos []string
	ents, _ := os.ReadDir(filepath.Join(db, "osv-scanner"))
	for _, e := range ents {
		ecos = append(ecos, e.Name())
		if left, _ := filepath.Glob(filepath.Join(db, "osv-scanner", e.Name(), ".all-*")); len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
	if !slices.Equal(ecos, []string{"Debian", "Go", "PyPI", "Ubuntu", "npm"}) {
		t.Errorf("ecosystems %v", ecos)
	}
	recs, err := loadRecords(context.Background(), filepath.Join(db, "osv-scanner", "Debian", "all.zip"), "Debian", []string{"openssh", "nginx"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, n := range []string{"openssh", "nginx"} {
		for _, r := range recs[n] {
			ids = append(ids, r.ID)
		}
	}
	sort.Strings(ids)
	if !slices.Equal(ids, []string{"DEBIAN-CVE-2024-7347", "DEBIAN-CVE-2025-23419", "DSA-5586-1", "DSA-5724-1"}) {
		t.Errorf("records %v (the withdrawn one must be dropped)", ids)
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "evil.json"), []byte(`{"id":"X-1","affected":[{"package":{"ecosystem":"../../etc","name":"x"}}]}`), 0o644)
	if err := BuildDB(bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "evil.json") {
		t.Errorf("ecosystem with a path in it: %v", err)
	}
	os.WriteFile(filepath.Join(bad, "evil.json"), []byte(`not json`), 0o644)
	if err := BuildDB(bad, t.TempDir()); err == nil || !strings.Contains(err.Error(), "evil.json") {
		t.Errorf("not JSON: %v", err)
	}
	if err := BuildDB(t.TempDir(), t.TempDir()); err == nil {
		t.Error("no records: no error")
	}
}
