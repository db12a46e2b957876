package attest

import (
	"slices"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/rules"
)

// KindsFor lists, in catalog order, the attestation kinds of the controls
// that apply at some of locs (state overlays only where a location is in
// that state): the kinds Due should remind about.
func KindsFor(cat *rules.Catalog, locs []config.Location) []string {
	states := []string{""}
	for _, l := range locs {
		states = append(states, l.State)
	}
	need := map[string]bool{}
	for _, k := range cat.Controls {
		if slices.ContainsFunc(states, k.AppliesIn) {
			for _, a := range k.Attestations {
				need[a] = true
			}
		}
	}
	kinds := []string{}
	for _, a := range cat.AttestationKinds {
		if need[a.Kind] {
			kinds = append(kinds, a.Kind)
		}
	}
	return kinds
}
