package sources

import (
	"fmt"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/collectors/entra"
	"github.com/vigilhq/vigil/collectors/google"
	"github.com/vigilhq/vigil/collectors/ldapidentity"
	"github.com/vigilhq/vigil/collectors/okta"
	"github.com/vigilhq/vigil/collectors/telegrafin"
	"github.com/vigilhq/vigil/config"
)

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
	inputs, err := telegrafin.NewAll(cfg.Telegraf)
	for _, in := range inputs {
		telegraf = append(telegraf, in)
	}
	return nil, telegraf, err
}
