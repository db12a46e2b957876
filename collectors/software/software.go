// Package software finds known-vulnerable software without touching the
// network: osv-scanner, used as a library, inventories lockfiles, SBOMs,
// directories and saved container images and matches them against a local
// copy of the OSV database, and MatchServices matches the versions nmap
// reads from service banners against the same records.
package software

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/osv-scanner/v2/pkg/models"
	"github.com/google/osv-scanner/v2/pkg/osvscanner"
	"github.com/ossf/osv-schema/bindings/go/osvschema"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/vigilhq/vigil/collectors/software/internal/advisory"
	"github.com/vigilhq/vigil/collectors/software/internal/imagetar"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// Name is the collector's name and the Source of its observations.
const Name = "osv-scanner"

// Attribute keys of a KindPackage observation (docs/software.md).
const (
	AttrFile           = "file"            // input file as written in the config (relative to its directory), or "nmap"
	AttrImagePath      = "image_path"      // for a container image: where in the image the package was found
	AttrEcosystem      = "ecosystem"       // OSV ecosystem: Go, npm, PyPI, Debian:12, ...
	AttrPackage        = "package"         // package name in that ecosystem (Debian: the source package)
	AttrBinaryPackages = "binary_packages" // []string: Debian/Alpine binary packages built from it, when they differ
	AttrVersion        = "version"         // installed version (Debian: with epoch and revision)
	AttrVulns          = "vulns"           // []string: OSV ids affecting that version
	AttrAliases        = "aliases"         // []string: their CVE ids
	AttrSeverity       = "severity"        // critical | high | medium | low | unknown: the highest of them
	AttrCVSS           = "cvss"            // float64: highest CVSS base score, 0 when no record has one
	AttrFixedVersions  = "fixed_versions"  // []string: versions that fix them
	AttrSummary        = "summary"         // the first vulnerability's summary
	AttrService        = "service"         // banner matches: nmap's service name
	AttrProduct        = "product"         // banner matches: nmap's product
	AttrMatchBasis     = "match_basis"     // banner matches: how the banner became a package version
)

// Scanner scans the configured software inventories and service banners
// for known vulnerabilities, offline.
type Scanner struct {
	paths []string
	base  string // the configuration's directory: file attributes are relative to it
	db    string
	now   func() time.Time
	// refused counts HTTP requests osv-scanner attempted: every one goes
	// to a transport that refuses it, and any is reported as a bug.
	refused atomic.Int64
}

// New returns a Scanner for cfg.Software against the database in
// cfg.OSVDB.
func New(cfg *config.Config) *Scanner {
	s := &Scanner{db: cfg.OSVDB, now: time.Now}
	if abs, err := filepath.Abs(cfg.OSVDB); err == nil && cfg.OSVDB != "" {
		s.db = abs // the shim's symlinks point at it from elsewhere
	}
	if cfg.Path != "" {
		if base, err := filepath.Abs(filepath.Dir(cfg.Path)); err == nil {
			s.base = base
		}
	}
	for _, src := range cfg.Software {
		s.paths = append(s.paths, src.Path)
	}
	return s
}

// Name identifies the collector in logs and scan errors.
func (s *Scanner) Name() string { return Name }

// errNetwork is what the refusing transport answers.
var errNetwork = errors.New("vigil scans software offline: network access refused")

type offline struct{ refused *atomic.Int64 }

func (o offline) RoundTrip(req *http.Request) (*http.Response, error) {
	o.refused.Add(1)
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, fmt.Errorf("%w (%s %s)", errNetwork, req.Method, req.URL.Host)
}

// Collect scans every configured path and returns one KindPackage
// observation per vulnerable package. A path that cannot be read or
// parsed is an error naming it; the other paths are still scanned and
// their observations returned with the joined errors, so the caller knows
// the inventory is partial. Ecosystems without a database are reported
// once, as ErrNoDatabase, after the rest was matched.
//
// osv-scanner's scan takes no context: cancellation is honoured between
// paths, not within one.
func (s *Scanner) Collect(ctx context.Context) ([]observe.Observation, error) {
	if len(s.paths) == 0 {
		return nil, nil
	}
	shim, err := newShim(s.db)
	if err != nil {
		return nil, fmt.Errorf("software: %w", err)
	}
	defer shim.close()
	var (
		out  []observe.Observation
		errs []error
	)
	missing := map[string]bool{}
	for _, p := range s.paths {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("software: %w", err))
			break
		}
		obs, miss, err := s.scanPath(p, shim)
		out = append(out, obs...)
		for _, m := range miss {
			missing[m] = true
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n := s.refused.Load(); n > 0 {
		errs = append(errs, fmt.Errorf("software: osv-scanner attempted %d network request(s); all were refused, but this is a bug: report it", n))
	}
	if len(missing) > 0 {
		ecos := make([]string, 0, len(missing))
		for m := range missing {
			ecos = append(ecos, m)
		}
		errs = append(errs, fmt.Errorf("software: %w", missingDB(s.db, ecos)))
	}
	sortObservations(out)
	return out, errors.Join(errs...)
}

// scanPath scans one configured path: a directory (recursively, plus the
// `docker save` tarballs at its top), a lockfile or SBOM, or an image
// tarball. It returns the ecosystems that had no database.
func (s *Scanner) scanPath(p string, shim *shim) ([]observe.Observation, []string, error) {
	name := s.display(p)
	fail := func(err error) error { return fmt.Errorf("software %s: %w", name, err) }
	st, err := os.Stat(p)
	if err != nil {
		return nil, nil, fail(err)
	}
	if err := readable(p, st.IsDir()); err != nil {
		return nil, nil, fail(err)
	}
	var (
		out     []observe.Observation
		missing []string
		errs    []error
	)
	run := func(image string, actions osvscanner.ScannerActions) {
		obs, miss, err := s.scan(image, actions, shim)
		out = append(out, obs...)
		missing = append(missing, miss...)
		if err != nil {
			errs = append(errs, fail(err))
		}
	}
	switch {
	case st.IsDir():
		run("", osvscanner.ScannerActions{DirectoryPaths: []string{p}, Recursive: true})
		ents, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, fail(err))
		}
		for _, e := range ents {
			ip := filepath.Join(p, e.Name())
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".tar") {
				continue
			}
			if ok, err := imagetar.IsImage(ip); err != nil {
				errs = append(errs, fmt.Errorf("software %s: %w", s.display(ip), err))
			} else if ok {
				run(ip, osvscanner.ScannerActions{Image: ip, IsImageArchive: true})
			}
		}
	default:
		ok, err := imagetar.IsImage(p)
		switch {
		case err != nil:
			errs = append(errs, fail(err))
		case ok:
			run(p, osvscanner.ScannerActions{Image: p, IsImageArchive: true})
		default:
			run("", osvscanner.ScannerActions{LockfilePaths: []string{p}})
		}
	}
	return out, missing, errors.Join(errs...)
}

// readable fails when the path cannot be opened (and, for a directory,
// listed): osv-scanner's walk skips what it cannot read without a word.
func readable(p string, dir bool) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if dir {
		if _, err := f.ReadDir(1); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}
	var b [1]byte
	if _, err := f.Read(b[:]); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// scan runs osv-scanner once, offline, and turns its matches into
// observations. When the inventory holds an ecosystem without a database
// it runs again with an empty one in its place: osv-scanner stops matching
// every later package at the first missing database, and says nothing.
func (s *Scanner) scan(image string, actions osvscanner.ScannerActions, shim *shim) ([]observe.Observation, []string, error) {
	res, err := s.doScan(image, actions, shim)
	if err != nil {
		return nil, nil, err
	}
	missing := shim.missing(res)
	added, err := shim.addEmpty(missing)
	if err != nil {
		return nil, missing, err
	}
	if added {
		if res, err = s.doScan(image, actions, shim); err != nil {
			return nil, missing, err
		}
	}
	return s.observations(image, res), missing, nil
}

// doScan is the only call into osv-scanner. Every setting that keeps it
// off the network is here, each checked against v2.5.0's source:
//
//   - CompareOffline: match with the vulnmatch/osvlocal enricher against
//     local zips instead of the osv.dev API; no osv.dev client is built,
//     which also disables the vendored-code matcher that queries it.
//   - DownloadDatabases false: osvlocal's zip loader runs with
//     Offline=true and neither HEADs nor GETs the bucket.
//   - PluginNetworkDisabled: the scan's capabilities say NetworkOffline,
//     so plugins that need the network (baseimage, pom.xml resolution,
//     ...) are filtered out before the scan.
//   - TransitiveScanning.Disabled: no deps.dev or registry resolution.
//   - HTTPClient: whatever is left gets a transport that refuses every
//     request and counts it.
func (s *Scanner) doScan(image string, a osvscanner.ScannerActions, shim *shim) (models.VulnerabilityResults, error) {
	a.CompareOffline = true
	a.DownloadDatabases = false
	a.PluginNetworkDisabled = true
	a.LocalDBPath = shim.dir
	a.ShowAllPackages = true // the ecosystems of every package, to find missing databases
	a.TransitiveScanning = osvscanner.TransitiveScanningActions{Disabled: true}
	a.HTTPClient = &http.Client{Transport: offline{&s.refused}}
	var (
		res models.VulnerabilityResults
		err error
	)
	if image != "" {
		res, err = osvscanner.DoContainerScan(a)
	} else {
		res, err = osvscanner.DoScan(a)
	}
	switch {
	case err == nil, errors.Is(err, osvscanner.ErrVulnerabilitiesFound):
		return res, nil
	case errors.Is(err, osvscanner.ErrNoPackagesFound):
		return models.VulnerabilityResults{}, nil
	case errors.Is(err, osvscanner.ErrExtractorNotFound):
		return res, fmt.Errorf("%w (lockfiles and SBOMs are recognised by name: package-lock.json, go.mod, requirements.txt, *.cdx.json, bom.json, *.spdx.json, ...; see docs/software.md)", err)
	}
	return res, err
}

// observations turns osv-scanner's results into one observation per
// vulnerable package (binary packages built from one source merged).
func (s *Scanner) observations(image string, res models.VulnerabilityResults) []observe.Observation {
	type key struct{ file, inImage, eco, name, version string }
	byKey := map[key]*observe.Observation{}
	var order []key
	at := s.now().UTC()
	for _, src := range res.Results {
		file, inImage := s.display(src.Source.Path), ""
		if image != "" {
			file, inImage = s.display(image), strings.TrimPrefix(src.Source.Path, "/")
		}
		for _, pv := range src.Packages {
			recs := records(pv.Vulnerabilities)
			if len(recs) == 0 {
				continue
			}
			p := pv.Package
			k := key{file, inImage, p.Ecosystem, p.Name, p.Version}
			if o, ok := byKey[k]; ok {
				addBinary(o, p)
				continue
			}
			attrs := packageAttrs(p.Ecosystem, p.Name, p.Version, recs)
			attrs[AttrFile] = file
			if inImage != "" {
				attrs[AttrImagePath] = inImage
			}
			o := &observe.Observation{Kind: observe.KindPackage, Source: Name, At: at, Attrs: attrs}
			addBinary(o, p)
			byKey[k] = o
			order = append(order, k)
		}
	}
	out := make([]observe.Observation, 0, len(order))
	for _, k := range order {
		out = append(out, *byKey[k])
	}
	return out
}

func addBinary(o *observe.Observation, p models.PackageInfo) {
	if p.OSPackageName == "" || p.OSPackageName == p.Name {
		return
	}
	l, _ := o.Attrs[AttrBinaryPackages].([]string)
	if !slices.Contains(l, p.OSPackageName) {
		l = append(l, p.OSPackageName)
		sort.Strings(l)
	}
	o.Attrs[AttrBinaryPackages] = l
}

// records converts osv-scanner's matches to records, dropping withdrawn
// ones (osv-scanner does too; this keeps it true whatever it does).
func records(vulns []*osvschema.Vulnerability) []*advisory.Record {
	var out []*advisory.Record
	for _, v := range vulns {
		data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(v)
		if err != nil {
			continue
		}
		r, err := advisory.Parse(data)
		if err != nil || r.Withdrawn != "" {
			continue
		}
		out = append(out, r)
	}
	return out
}

// packageAttrs are the attributes every package observation carries,
// from the records affecting it.
func packageAttrs(ecosystem, name, version string, recs []*advisory.Record) map[string]any {
	recs = slices.Clone(recs)
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	var (
		ids, cves, fixed []string
		summary          string
		rating           = advisory.Unknown
		score            float64
	)
	for _, r := range recs {
		if !slices.Contains(ids, r.ID) {
			ids = append(ids, r.ID)
		}
		for _, c := range r.CVEs() {
			if !slices.Contains(cves, c) {
				cves = append(cves, c)
			}
		}
		for _, f := range r.FixedVersions(ecosystem, name) {
			if !slices.Contains(fixed, f) {
				fixed = append(fixed, f)
			}
		}
		rt, sc := r.Rate()
		if advisory.Rank(rt) > advisory.Rank(rating) {
			rating = rt
		}
		score = max(score, sc)
		if summary == "" {
			summary = r.Text()
		}
	}
	sort.Strings(cves)
	advisory.SortVersions(ecosystem, fixed)
	return map[string]any{
		AttrEcosystem:     ecosystem,
		AttrPackage:       name,
		AttrVersion:       version,
		AttrVulns:         nonNil(ids),
		AttrAliases:       nonNil(cves),
		AttrSeverity:      rating,
		AttrCVSS:          score,
		AttrFixedVersions: nonNil(fixed),
		AttrSummary:       summary,
	}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// display renders a path as the user wrote it: relative to the
// configuration's directory when it lies below it.
func (s *Scanner) display(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if s.base != "" {
		if rel, err := filepath.Rel(s.base, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.ToSlash(p)
}

func sortObservations(obs []observe.Observation) {
	sort.SliceStable(obs, func(i, j int) bool {
		a, b := obs[i], obs[j]
		if ta, tb := a.Target(), b.Target(); ta != tb {
			return ta < tb
		}
		ea, _ := a.Attrs[AttrEcosystem].(string)
		eb, _ := b.Attrs[AttrEcosystem].(string)
		return ea < eb
	})
}
