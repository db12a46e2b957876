package sources

import (
	"fmt"

	"github.com/vigilhq/vigil/collectors"
	"github.com/vigilhq/vigil/config"
)

// identityExtra builds the identity collectors other than CSV.
func identityExtra(src config.IdentitySource) (collectors.Collector, error) {
	return nil, fmt.Errorf("identity source type %q is not available in this build", src.Type)
}

// extra builds the software and telegraf collectors.
func extra(cfg *config.Config) (software, telegraf []collectors.Collector, err error) {
	return nil, nil, nil
}
