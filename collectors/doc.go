// Package collectors turns non-network sources (identity systems, CSV
// exports, software inventories) into observations for the rules to judge.
// Each source lives in a subpackage; this package holds what they share.
package collectors

import (
	"context"

	"github.com/vigilhq/vigil/observe"
)

// KindAccount is the observation kind for one account in an identity
// system. Its Host and Location are empty; the facts are in Attrs (see
// docs/observations.md): system, username, email, display_name, enabled,
// mfa, last_login, locations, role, is_admin, extra.
const KindAccount observe.Kind = "account"

// Collector is one configured non-network source. Collect returns every
// observation the source yields now; a source that partly failed returns what
// it could read together with an error describing the rest.
type Collector interface {
	// Name identifies the source in logs and scan errors, e.g. "csv:emr".
	Name() string
	Collect(ctx context.Context) ([]observe.Observation, error)
}
