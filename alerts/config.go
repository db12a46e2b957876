package alerts

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// OptionsFrom returns the alert computation options the configuration sets.
func OptionsFrom(a config.AlertSettings) Options {
	return Options{MinSeverity: observe.Severity(a.MinSeverity), DashboardURL: a.DashboardURL}
}

// Routes builds a Route for each configured channel, reading its secrets
// from the environment (lookup, default os.LookupEnv) or files. Errors name
// the channel and the variable or file, never a secret's value.
func Routes(a config.AlertSettings, organization string, lookup func(string) (string, bool)) ([]Route, error) {
	var routes []Route
	var errs []error
	for _, c := range a.Channels {
		ch, err := build(c, organization, lookup)
		if err != nil {
			errs = append(errs, fmt.Errorf("alerts channel %s: %w", c.Name, err))
			continue
		}
		routes = append(routes, Route{
			Name:        c.Name,
			Channel:     ch,
			MinSeverity: observe.Severity(c.MinSeverity),
			Digest:      c.DigestOn(),
			Window:      c.Window.Duration,
		})
	}
	return routes, errors.Join(errs...)
}

func build(c config.AlertChannel, org string, lookup func(string) (string, bool)) (Channel, error) {
	retry := Retry{Attempts: c.Attempts}
	format := Format{Organization: org, MaxItems: c.MaxItems}
	switch c.Type {
	case "webhook", "slack", "teams":
		u := NewSecret(c.URL)
		if c.URL == "" {
			var err error
			if u, err = ReadSecret(c.URLEnv, c.URLFile, lookup); err != nil {
				return nil, fmt.Errorf("url: %w", err)
			}
		}
		h := HTTPOptions{URL: u, Timeout: c.Timeout.Duration, Retry: retry}
		switch c.Type {
		case "slack":
			return NewSlack(h, format)
		case "teams":
			return NewTeams(h, format)
		}
		key, err := ReadSecret(c.SecretEnv, c.SecretFile, lookup)
		if err != nil {
			return nil, fmt.Errorf("secret: %w", err)
		}
		return NewWebhook(WebhookOptions{HTTPOptions: h, Secret: key, Organization: org})
	case "email":
		o := EmailOptions{Host: c.Host, Port: c.Port, From: c.From, To: c.To, Username: c.Username,
			Timeout: c.Timeout.Duration, Retry: retry, Format: format}
		if c.Username != "" {
			p, err := ReadSecret(c.PasswordEnv, c.PasswordFile, lookup)
			if err != nil {
				return nil, fmt.Errorf("password: %w", err)
			}
			o.Password = p
		}
		if c.CAFile != "" {
			pem, err := os.ReadFile(c.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", c.CAFile)
			}
			o.RootCAs = pool
		}
		return NewEmail(o)
	}
	return nil, fmt.Errorf("unknown channel type %q", c.Type)
}
