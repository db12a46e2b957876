package synth

import (
	"math/rand/v2"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// Fleet is a set of synthetic sites, each watched by its own site agent,
// for the agent ingest benchmark (vigil-agentload): the same sites,
// assets, services and firewalls the dashboard's synthetic organisation
// has, without accounts or history.
type Fleet struct {
	locs []*location
}

// NewFleet lays out sites sites with assets hosts in all, from seed.
func NewFleet(seed uint64, sites, assets int) *Fleet {
	r := rand.New(rand.NewPCG(seed, 0xf1ee7))
	return &Fleet{locs: makeLocations(r, sites, max(assets, sites))}
}

// Sites are the location ids, in order.
func (f *Fleet) Sites() []string {
	ids := make([]string, len(f.locs))
	for i, l := range f.locs {
		ids[i] = l.ID
	}
	return ids
}

// WriteConfig writes a vigil configuration with every site as a location
// and no schedules and no sources: a server over it never scans. The 10.x
// addresses are data only.
func (f *Fleet) WriteConfig(path, organization string) error {
	return writeConfigWith(path, f.locs, "organization: "+organization+"\n")
}

// Observations are what one scan of site i at at sees: hosts, services,
// TLS, check matches and the segmentation probes.
func (f *Fleet) Observations(i int, at time.Time) []observe.Observation {
	return f.locs[i].observations(at, nil)
}
