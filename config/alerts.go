package config

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
)

// AlertSettings configure the alerts `vigil serve` sends when something
// changes for the worse (docs/alerts.md).
type AlertSettings struct {
	// MinSeverity is the lowest finding severity that raises a new-finding
	// alert (default high).
	MinSeverity string `yaml:"min_severity"`
	// ExpiryWarnDays is how many days before an attestation expires the
	// first reminder goes out (default 30).
	ExpiryWarnDays int `yaml:"expiry_warn_days"`
	// DashboardURL, when set, adds links to the dashboard to alerts.
	DashboardURL string `yaml:"dashboard_url"`
	// Channels are where alerts go.
	Channels []AlertChannel `yaml:"channels"`
	// AgentQuietAfter is how long an enrolled site agent may go unheard
	// before it is shown as quiet and an alert goes out (default 30m).
	AgentQuietAfter Duration `yaml:"agent_quiet_after"`
}

// AlertChannel is one place alerts are delivered. Secrets (the HMAC key,
// the SMTP password, a chat webhook URL, whose path is its token) are only
// named through *_env or *_file fields.
type AlertChannel struct {
	// Name identifies the channel in logs and in what vigil remembers it
	// sent (default: the type, then type-2, type-3, ...).
	Name string `yaml:"name"`
	// Type is webhook, slack, teams or email.
	Type string `yaml:"type"`

	// URL (webhook only), or URLEnv / URLFile (any webhook type; required
	// for slack and teams): where to POST.
	URL     string `yaml:"url"`
	URLEnv  string `yaml:"url_env"`
	URLFile string `yaml:"url_file"`
	// SecretEnv / SecretFile hold the webhook's HMAC-SHA256 signing key.
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`

	// Host, Port (default 587), From and To address an email channel.
	Host string   `yaml:"host"`
	Port int      `yaml:"port"`
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Username logs in with AUTH PLAIN, with the password from
	// PasswordEnv or PasswordFile.
	Username     string `yaml:"username"`
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// CAFile is a PEM bundle trusted for the SMTP server's certificate.
	CAFile string `yaml:"ca_file"`

	// MinSeverity drops alerts below it (default: every alert).
	MinSeverity string `yaml:"min_severity"`
	// Digest combines the alerts of one scan into one message (default
	// true); Window, when set, also combines those within the window.
	Digest *bool    `yaml:"digest"`
	Window Duration `yaml:"window"`
	// MaxItems caps the alerts a digest lists (default 20).
	MaxItems int `yaml:"max_items"`
	// Timeout bounds one delivery attempt (default 10s for webhooks, 30s
	// for email); Attempts bounds the tries (default 5).
	Timeout  Duration `yaml:"timeout"`
	Attempts int      `yaml:"attempts"`
}

// DigestOn reports whether the channel combines alerts (the default).
func (c AlertChannel) DigestOn() bool { return c.Digest == nil || *c.Digest }

// AlertChannelTypes lists the accepted alert channel types.
var AlertChannelTypes = []string{"webhook", "slack", "teams", "email"}

// severities a min_severity may name, highest first.
var severities = []string{"critical", "high", "medium", "low", "info"}

// Defaults for alerts.
const (
	DefaultAlertMinSeverity = "high"
	DefaultAlertExpiryWarn  = 30
	DefaultAlertSMTPPort    = 587
	DefaultAlertMaxItems    = 20
	MaxAlertWindow          = 24 * time.Hour
	DefaultAgentQuietAfter  = 30 * time.Minute
)

// alertFields lists, per field, the channel types it applies to.
var alertFields = []struct {
	name  string
	set   func(AlertChannel) bool
	types []string
}{
	{"url", func(c AlertChannel) bool { return c.URL != "" }, []string{"webhook", "slack", "teams"}},
	{"url_env", func(c AlertChannel) bool { return c.URLEnv != "" }, []string{"webhook", "slack", "teams"}},
	{"url_file", func(c AlertChannel) bool { return c.URLFile != "" }, []string{"webhook", "slack", "teams"}},
	{"secret_env", func(c AlertChannel) bool { return c.SecretEnv != "" }, []string{"webhook"}},
	{"secret_file", func(c AlertChannel) bool { return c.SecretFile != "" }, []string{"webhook"}},
	{"host", func(c AlertChannel) bool { return c.Host != "" }, []string{"email"}},
	{"port", func(c AlertChannel) bool { return c.Port != 0 }, []string{"email"}},
	{"from", func(c AlertChannel) bool { return c.From != "" }, []string{"email"}},
	{"to", func(c AlertChannel) bool { return len(c.To) > 0 }, []string{"email"}},
	{"username", func(c AlertChannel) bool { return c.Username != "" }, []string{"email"}},
	{"password_env", func(c AlertChannel) bool { return c.PasswordEnv != "" }, []string{"email"}},
	{"password_file", func(c AlertChannel) bool { return c.PasswordFile != "" }, []string{"email"}},
	{"ca_file", func(c AlertChannel) bool { return c.CAFile != "" }, []string{"email"}},
}

func (v *validator) alerts(a *AlertSettings) {
	if a.MinSeverity != "" && !slices.Contains(severities, a.MinSeverity) {
		v.fail("alerts.min_severity", "unknown severity %q: use one of %s", a.MinSeverity, strings.Join(severities, ", "))
	}
	if a.ExpiryWarnDays < 0 || a.ExpiryWarnDays > 365 {
		v.fail("alerts.expiry_warn_days", "%d is out of range 1-365", a.ExpiryWarnDays)
	}
	if a.DashboardURL != "" {
		if u, err := url.Parse(a.DashboardURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.fail("alerts.dashboard_url", "%q is not an http(s) URL (e.g. https://vigil.example.com)", a.DashboardURL)
		}
	}
	names := map[string]int{}
	for i := range a.Channels {
		c := &a.Channels[i]
		p := fmt.Sprintf("alerts.channels[%d]", i)
		v.alertChannel(p, c)
		name := c.Name
		if name == "" {
			continue
		}
		if !idPattern.MatchString(name) {
			v.fail(p+".name", "%q must match [a-z0-9-]+", name)
		}
		if prev, dup := names[name]; dup {
			v.fail(p+".name", "duplicate channel name %q (also alerts.channels[%d])", name, prev)
		}
		names[name] = i
	}
}

func (v *validator) alertChannel(p string, c *AlertChannel) {
	if !slices.Contains(AlertChannelTypes, c.Type) {
		if c.Type == "" {
			v.fail(p+".type", "is required: one of %s", strings.Join(AlertChannelTypes, ", "))
		} else {
			v.fail(p+".type", "unknown alert channel type %q: use one of %s", c.Type, strings.Join(AlertChannelTypes, ", "))
		}
		return
	}
	for _, f := range alertFields {
		if f.set(*c) && !slices.Contains(f.types, c.Type) {
			v.fail(p+"."+f.name, "does not apply to a %s channel (only to %s)", c.Type, strings.Join(f.types, ", "))
		}
	}
	if c.MinSeverity != "" && !slices.Contains(severities, c.MinSeverity) {
		v.fail(p+".min_severity", "unknown severity %q: use one of %s", c.MinSeverity, strings.Join(severities, ", "))
	}
	if c.Window.Duration > 0 && !c.DigestOn() {
		v.fail(p+".window", "a window only applies with digest: true")
	}
	if c.Window.Duration > MaxAlertWindow {
		v.fail(p+".window", "%s is longer than 24h: alerts that wait a day are not alerts", c.Window.Duration)
	}
	if c.MaxItems < 0 || c.MaxItems > 1000 {
		v.fail(p+".max_items", "%d is out of range 1-1000", c.MaxItems)
	}
	if c.Attempts < 0 || c.Attempts > 20 {
		v.fail(p+".attempts", "%d is out of range 1-20", c.Attempts)
	}
	if c.Timeout.Duration > 10*time.Minute {
		v.fail(p+".timeout", "%s is longer than 10m", c.Timeout.Duration)
	}
	switch c.Type {
	case "webhook", "slack", "teams":
		v.alertURL(p, c)
		if c.Type == "webhook" && c.SecretEnv == "" && c.SecretFile == "" {
			v.fail(p, "a webhook channel needs secret_env or secret_file: the key deliveries are signed with (receivers check X-Vigil-Signature)")
		}
		if c.SecretEnv != "" && c.SecretFile != "" {
			v.fail(p+".secret_file", "set secret_env or secret_file, not both")
		}
	case "email":
		v.alertEmail(p, c)
	}
}

func (v *validator) alertURL(p string, c *AlertChannel) {
	n := 0
	for _, s := range []string{c.URL, c.URLEnv, c.URLFile} {
		if s != "" {
			n++
		}
	}
	switch {
	case n == 0 && c.Type == "webhook":
		v.fail(p, "a webhook channel needs url, url_env or url_file")
	case n == 0:
		v.fail(p, "a %s channel needs url_env or url_file (the webhook URL is a credential: its path is the token)", c.Type)
	case n > 1:
		v.fail(p, "set one of url, url_env and url_file")
	}
	if c.URL == "" {
		return
	}
	if c.Type != "webhook" {
		v.fail(p+".url", "secrets are never written in the config file: a %s webhook URL is a credential (its path is the token); name an environment variable with url_env or a file with url_file", c.Type)
		return
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Host == "" {
		v.fail(p+".url", "is not an absolute URL (e.g. https://siem.example.com/vigil)")
		return
	}
	if u.User != nil {
		v.fail(p+".url", "secrets are never written in the config file: this URL embeds a user name or password; use url_env or url_file")
		return
	}
	for k := range u.Query() {
		if looksSecret(k) || slices.Contains([]string{"sig", "signature", "key", "code", "auth", "access_token"}, strings.ToLower(k)) {
			v.fail(p+".url", "secrets are never written in the config file: query parameter %q looks like a credential; use url_env or url_file", k)
			return
		}
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			v.fail(p+".url", "plain http is only allowed to a loopback address: alerts describe weaknesses and must not cross a network in clear; use https")
		}
	default:
		v.fail(p+".url", "scheme %q: use https", u.Scheme)
	}
}

func (v *validator) alertEmail(p string, c *AlertChannel) {
	if c.Host == "" {
		v.fail(p+".host", "an email channel needs host: (the SMTP server)")
	} else if strings.ContainsAny(c.Host, ":/ ") && net.ParseIP(c.Host) == nil {
		v.fail(p+".host", "%q: write the host name alone and the port in port:", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		v.fail(p+".port", "port %d out of range 1-65535", c.Port)
	}
	if c.Port == 465 {
		v.fail(p+".port", "port 465 (implicit TLS) is not supported: use the submission port 587, where vigil requires STARTTLS")
	}
	if c.From == "" {
		v.fail(p+".from", "an email channel needs from: (the sender address)")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		v.fail(p+".from", "%q is not an email address", c.From)
	}
	if len(c.To) == 0 {
		v.fail(p+".to", "an email channel needs at least one recipient in to:")
	}
	for i, t := range c.To {
		if _, err := mail.ParseAddress(t); err != nil {
			v.fail(fmt.Sprintf("%s.to[%d]", p, i), "%q is not an email address", t)
		}
	}
	hasPass := c.PasswordEnv != "" || c.PasswordFile != ""
	switch {
	case c.Username != "" && !hasPass:
		v.fail(p, "username is set: add password_env or password_file")
	case c.Username == "" && hasPass:
		v.fail(p+".username", "a password is named but no username: add username")
	case c.PasswordEnv != "" && c.PasswordFile != "":
		v.fail(p+".password_file", "set password_env or password_file, not both")
	}
	if c.CAFile != "" {
		v.mustExist(p+".ca_file", c.CAFile, false)
	}
}

// loopbackHost reports whether host is localhost or a loopback IP.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *AlertSettings) applyDefaults() {
	if a.MinSeverity == "" {
		a.MinSeverity = DefaultAlertMinSeverity
	}
	if a.ExpiryWarnDays == 0 {
		a.ExpiryWarnDays = DefaultAlertExpiryWarn
	}
	if a.AgentQuietAfter.Duration == 0 {
		a.AgentQuietAfter.Duration = DefaultAgentQuietAfter
	}
	count := map[string]int{}
	taken := map[string]bool{}
	for _, c := range a.Channels {
		taken[c.Name] = true
	}
	for i := range a.Channels {
		c := &a.Channels[i]
		if c.Name == "" {
			for {
				count[c.Type]++
				name := c.Type
				if count[c.Type] > 1 {
					name = fmt.Sprintf("%s-%d", c.Type, count[c.Type])
				}
				if !taken[name] {
					c.Name, taken[name] = name, true
					break
				}
			}
		}
		if c.Type == "email" && c.Port == 0 {
			c.Port = DefaultAlertSMTPPort
		}
		if c.MaxItems == 0 {
			c.MaxItems = DefaultAlertMaxItems
		}
	}
}

func (a *AlertSettings) resolvePaths(abs func(*string)) {
	for i := range a.Channels {
		abs(&a.Channels[i].URLFile)
		abs(&a.Channels[i].SecretFile)
		abs(&a.Channels[i].PasswordFile)
		abs(&a.Channels[i].CAFile)
	}
}
