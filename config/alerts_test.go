package config

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const alertsBase = "organization: T\nlocations: [{id: a, segments: [{name: s, cidr: 10.0.0.0/24, role: guest}]}]\n"

func TestAlertsValid(t *testing.T) {
	y := alertsBase + `alerts:
  min_severity: critical
  dashboard_url: https://vigil.example.com
  channels:
    - type: webhook
      url: https://siem.example.com/hooks/vigil
      secret_env: VIGIL_WEBHOOK_SECRET
      window: 5m
    - type: slack
      url_env: SLACK_WEBHOOK_URL
      digest: false
      min_severity: critical
    - type: teams
      url_file: secrets/teams-url
    - name: front-office
      type: email
      host: smtp.example.com
      from: vigil@example.com
      to: [it@example.com, "Owner <owner@example.com>"]
      username: vigil
      password_file: secrets/smtp-password
      max_items: 10
    - type: email
      host: 127.0.0.1
      port: 25
      from: vigil@localhost
      to: [root@localhost]
`
	cfg, err := Parse(filepath.Join("conf", "vigil.yaml"), []byte(y))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := cfg.Alerts
	if a.MinSeverity != "critical" || a.ExpiryWarnDays != DefaultAlertExpiryWarn || len(a.Channels) != 5 {
		t.Fatalf("alerts: %+v", a)
	}
	names := []string{}
	for _, c := range a.Channels {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "webhook,slack,teams,front-office,email" {
		t.Errorf("default names = %s", got)
	}
	wh, sl, tm, em := a.Channels[0], a.Channels[1], a.Channels[2], a.Channels[3]
	if !wh.DigestOn() || wh.Window.Duration != 5*time.Minute || wh.MaxItems != DefaultAlertMaxItems {
		t.Errorf("webhook defaults: %+v", wh)
	}
	if sl.DigestOn() {
		t.Error("digest: false ignored")
	}
	if want := filepath.Join("conf", "secrets", "teams-url"); tm.URLFile != want {
		t.Errorf("url_file = %q, want %q (relative to the config file)", tm.URLFile, want)
	}
	if em.Port != DefaultAlertSMTPPort || em.MaxItems != 10 || len(em.To) != 2 {
		t.Errorf("email: %+v", em)
	}
}

func TestAlertsDefaultsWithoutSection(t *testing.T) {
	cfg, err := Parse("x.yaml", []byte(alertsBase))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Alerts.MinSeverity != "high" || len(cfg.Alerts.Channels) != 0 {
		t.Errorf("defaults: %+v", cfg.Alerts)
	}
}

// Each mistake is reported with file, line and field, and secrets written
// in the file are refused with a message saying where they go instead.
func TestAlertsErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown type", "alerts:\n  channels:\n    - type: pager\n",
			[]string{"x.yaml:5: alerts.channels[0].type: unknown alert channel type \"pager\""}},
		{"secret in file", "alerts:\n  channels:\n    - type: webhook\n      url: https://h.example.com/x\n      secret: s3cret\n",
			[]string{"x.yaml:7: alerts.channels[0].secret: secrets are never written in the config file: name an environment variable with secret_env or a file with secret_file"}},
		{"password in file", "alerts:\n  channels:\n    - type: email\n      host: smtp.example.com\n      from: a@example.com\n      to: [b@example.com]\n      username: u\n      password: hunter2\n",
			[]string{"x.yaml:10: alerts.channels[0].password: secrets are never written"}},
		{"slack url in file", "alerts:\n  channels:\n    - type: slack\n      url: https://hooks.slack.com/services/T000/B000/XXXXXXXX\n",
			[]string{"x.yaml:6: alerts.channels[0].url: secrets are never written in the config file: a slack webhook URL is a credential"}},
		{"teams url in file", "alerts:\n  channels:\n    - type: teams\n      url: https://prod-01.westus.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=zzz\n",
			[]string{"alerts.channels[0].url: secrets are never written in the config file: a teams webhook URL"}},
		{"token in webhook query", "alerts:\n  channels:\n    - type: webhook\n      url: https://h.example.com/x?token=abc\n      secret_env: S\n",
			[]string{"x.yaml:6: alerts.channels[0].url: secrets are never written in the config file: query parameter \"token\""}},
		{"password in webhook url", "alerts:\n  channels:\n    - type: webhook\n      url: https://u:p@h.example.com/x\n      secret_env: S\n",
			[]string{"alerts.channels[0].url: secrets are never written in the config file: this URL embeds a user name or password"}},
		{"webhook without secret", "alerts:\n  channels:\n    - type: webhook\n      url: https://h.example.com/x\n",
			[]string{"x.yaml:5: alerts.channels[0]: a webhook channel needs secret_env or secret_file"}},
		{"plain http", "alerts:\n  channels:\n    - type: webhook\n      url: http://siem.example.com/x\n      secret_env: S\n",
			[]string{"alerts.channels[0].url: plain http is only allowed to a loopback address"}},
		{"slack without url", "alerts:\n  channels:\n    - type: slack\n",
			[]string{"alerts.channels[0]: a slack channel needs url_env or url_file"}},
		{"two urls", "alerts:\n  channels:\n    - type: webhook\n      url: https://h.example.com/x\n      url_env: U\n      secret_env: S\n",
			[]string{"alerts.channels[0]: set one of url, url_env and url_file"}},
		{"field of another type", "alerts:\n  channels:\n    - type: slack\n      url_env: U\n      host: smtp.example.com\n",
			[]string{"x.yaml:7: alerts.channels[0].host: does not apply to a slack channel (only to email)"}},
		{"email incomplete", "alerts:\n  channels:\n    - type: email\n      from: not an address\n      username: u\n",
			[]string{"alerts.channels[0].host: an email channel needs host:", "x.yaml:6: alerts.channels[0].from: \"not an address\" is not an email address", "alerts.channels[0].to: an email channel needs at least one recipient", "alerts.channels[0]: username is set: add password_env or password_file"}},
		{"bad recipient", "alerts:\n  channels:\n    - type: email\n      host: smtp.example.com\n      from: a@example.com\n      to: [ok@example.com, nope]\n",
			[]string{"alerts.channels[0].to[1]: \"nope\" is not an email address"}},
		{"implicit tls port", "alerts:\n  channels:\n    - type: email\n      host: smtp.example.com\n      port: 465\n      from: a@example.com\n      to: [b@example.com]\n",
			[]string{"alerts.channels[0].port: port 465 (implicit TLS) is not supported"}},
		{"bad severities", "alerts:\n  min_severity: urgent\n  channels:\n    - type: slack\n      url_env: U\n      min_severity: severe\n",
			[]string{"x.yaml:4: alerts.min_severity: unknown severity \"urgent\"", "alerts.channels[0].min_severity: unknown severity \"severe\""}},
		{"window without digest", "alerts:\n  channels:\n    - type: slack\n      url_env: U\n      digest: false\n      window: 10m\n",
			[]string{"alerts.channels[0].window: a window only applies with digest: true"}},
		{"bad window", "alerts:\n  channels:\n    - type: slack\n      url_env: U\n      window: soon\n",
			[]string{"x.yaml:7: alerts.channels[0].window: invalid duration \"soon\""}},
		{"duplicate names", "alerts:\n  channels:\n    - {name: ops, type: slack, url_env: U}\n    - {name: ops, type: teams, url_env: V}\n",
			[]string{"x.yaml:6: alerts.channels[1].name: duplicate channel name \"ops\""}},
		{"missing ca file", "alerts:\n  channels:\n    - type: email\n      host: smtp.example.com\n      from: a@example.com\n      to: [b@example.com]\n      ca_file: nope.pem\n",
			[]string{"alerts.channels[0].ca_file: nope.pem:"}},
		{"misspelt field", "alerts:\n  channels:\n    - type: email\n      hots: smtp.example.com\n",
			[]string{"x.yaml:6: alerts.channels[0].hots: unknown field (did you mean \"host\"?)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(alertsBase+tc.yaml))
			if err == nil {
				t.Fatal("Parse accepted a bad alerts section")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			for _, secret := range []string{"s3cret", "hunter2", "XXXXXXXX", "zzz"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error repeats the secret %q: %v", secret, err)
				}
			}
		})
	}
}
