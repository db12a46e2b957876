package software

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vigilhq/vigil/collectors/software/internal/advisory"
	"github.com/vigilhq/vigil/observe"
)

// bannerOf reads the banner attributes of a service observation.
func bannerOf(o observe.Observation) advisory.Banner {
	str := func(k string) string { s, _ := o.Attrs[k].(string); return s }
	b := advisory.Banner{Product: str("product"), Version: str("version"), ExtraInfo: str("extrainfo")}
	switch c := o.Attrs["cpe"].(type) {
	case []string:
		b.CPEs = c
	case []any:
		for _, x := range c {
			if s, ok := x.(string); ok {
				b.CPEs = append(b.CPEs, s)
			}
		}
	}
	return b
}

// MatchServices looks up the software versions nmap read from service
// banners in the offline database and returns one KindPackage observation
// per service running a version with known vulnerabilities, placed like
// the service (its Target is IP:PORT). How each banner became a package
// version is in its match_basis attribute; banners vigil cannot turn into
// a comparable version yield nothing. An ecosystem the banners need but
// the database lacks is an ErrNoDatabase error, returned with whatever
// else matched.
func (s *Scanner) MatchServices(ctx context.Context, obs []observe.Observation) ([]observe.Observation, error) {
	hosts := map[string]advisory.Distro{}
	for _, o := range obs {
		if o.Kind != observe.KindService {
			continue
		}
		h := bannerOf(o).Distro()
		if h.Name == "" {
			continue
		}
		k := o.Location + "\x00" + o.Host
		prev, seen := hosts[k]
		switch {
		case !seen:
			hosts[k] = h
		case prev.Name != h.Name:
			hosts[k] = advisory.Distro{Name: "?"} // services disagree: no hint
		case prev.Release == "":
			hosts[k] = h
		}
	}
	type job struct {
		o observe.Observation
		q advisory.Query
	}
	var jobs []job
	need := map[string]map[string]bool{} // base ecosystem → package names
	for _, o := range obs {
		if o.Kind != observe.KindService {
			continue
		}
		q, ok := advisory.ParseBanner(bannerOf(o), hosts[o.Location+"\x00"+o.Host])
		if !ok {
			continue
		}
		jobs = append(jobs, job{o, q})
		base := advisory.BaseEcosystem(q.Ecosystem)
		if need[base] == nil {
			need[base] = map[string]bool{}
		}
		need[base][q.Package] = true
	}
	var (
		errs    []error
		missing []string
	)
	recs := map[string]map[string][]*advisory.Record{}
	bases := make([]string, 0, len(need))
	for b := range need {
		bases = append(bases, b)
	}
	sort.Strings(bases)
	for _, base := range bases {
		zp, ok := dbPath(s.db, base)
		if !ok {
			missing = append(missing, base)
			continue
		}
		names := make([]string, 0, len(need[base]))
		for n := range need[base] {
			names = append(names, n)
		}
		sort.Strings(names)
		r, err := loadRecords(ctx, zp, base, names)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("software: %w", ctx.Err())
			}
			errs = append(errs, fmt.Errorf("software: offline OSV database %s: %w", base, err))
			continue
		}
		recs[base] = r
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("software: service versions: %w", missingDB(s.db, missing)))
	}
	at := s.now().UTC()
	var out []observe.Observation
	for _, j := range jobs {
		q := j.q
		var hits []*advisory.Record
		for _, r := range recs[advisory.BaseEcosystem(q.Ecosystem)][advisory.NormName(q.Ecosystem, q.Package)] {
			if q.Affected(r) {
				hits = append(hits, r)
			}
		}
		if len(hits) == 0 {
			continue
		}
		attrs := packageAttrs(q.Ecosystem, q.Package, q.Version, hits)
		attrs[AttrFile] = "nmap"
		attrs[AttrService], _ = j.o.Attrs["service"].(string)
		attrs[AttrProduct], _ = j.o.Attrs["product"].(string)
		attrs[AttrMatchBasis] = q.Basis
		out = append(out, observe.Observation{
			Kind: observe.KindPackage, Location: j.o.Location,
			Segment: j.o.Segment, SegmentRole: j.o.SegmentRole,
			Vantage: j.o.Vantage, VantageRole: j.o.VantageRole,
			InternetFacing: j.o.InternetFacing,
			Host:           j.o.Host, Port: j.o.Port, Proto: j.o.Proto,
			Source: Name, At: at, Attrs: attrs,
		})
	}
	return out, errors.Join(errs...)
}
