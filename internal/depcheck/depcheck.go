// Package depcheck pins the collectors' dependencies while they are being
// wired in; it is removed once each is imported by its package.
package depcheck

import (
	_ "github.com/go-ldap/ldap/v3"
	_ "github.com/google/osv-scanner/v2/pkg/osvscanner"
	_ "github.com/influxdata/telegraf/plugins/inputs/net_response"
	_ "github.com/influxdata/telegraf/plugins/inputs/x509_cert"
	_ "github.com/influxdata/telegraf/plugins/parsers/influx"
	_ "github.com/influxdata/telegraf/plugins/serializers/influx"
	_ "github.com/influxdata/telegraf/plugins/serializers/prometheus"
	_ "golang.org/x/oauth2/clientcredentials"
	_ "golang.org/x/oauth2/jwt"
)
