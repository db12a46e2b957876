package sources

import (
	"fmt"
	"os"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/entra"
	"github.com/vigilhq/vigil/collectors/google"
	"github.com/vigilhq/vigil/collectors/ldapidentity"
	"github.com/vigilhq/vigil/collectors/okta"
	softwarecol "github.com/vigilhq/vigil/collectors/software"
	"github.com/vigilhq/vigil/collectors/telegrafin"
	"github.com/vigilhq/vigil/config"
)

// Services returns the matcher that looks up the versions of the services
// a network scan found in the offline OSV database, or nil and the reason
// when there is no database to look in.
func Services(cfg *config.Config) (*softwarecol.Scanner, string) {
	entries, err := os.ReadDir(cfg.OSVDB)
	if err != nil || len(entries) == 0 {
		return nil, fmt.Sprintf("no OSV database at %s: service versions are not checked for known vulnerabilities (see docs/software.md)", cfg.OSVDB)
	}
	return softwarecol.New(cfg), ""
}

// identityExtra builds the identity collectors other than CSV.
func identityExtra(src config.IdentitySource) (collectors.Collector, error) {
	switch src.Type {
	case "entra":
		return entra.New(src)
	case "google":
		return google.New(src)
	case "okta":
		return okta.New(src)
	case "ldap":
		return ldapidentity.New(src)
	}
	return nil, fmt.Errorf("identity source type %q is not available in this build", src.Type)
}

// extra builds the software and telegraf collectors.
func extra(cfg *config.Config) (software, telegraf []collectors.Collector, err error) {
	if len(cfg.Software) > 0 {
		software = append(software, softwarecol.New(cfg))
	}
	inputs, err := telegrafin.NewAll(cfg.Telegraf)
	for _, in := range inputs {
		telegraf = append(telegraf, in)
	}
	return software, telegraf, err
}
