package rules

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
)

// mixedObservations is what a large MSP's scans store, in proportion: the
// segmentation test's reach probes dominate, then services, hosts, TLS and
// SSH facts, check matches and accounts. Roughly one in twenty matches a
// rule, as on a real network.
func mixedObservations(n int) []observe.Observation {
	services := []map[string]any{
		{"service": "http", "product": "nginx", "version": "1.22.1"},
		{"service": "https", "product": "nginx", "tunnel": "ssl"},
		{"service": "ssh", "product": "OpenSSH"},
		{"service": "microsoft-ds"},
		{"service": "ms-wbt-server"},
		{"service": "telnet"},
		{"service": "domain"},
		{"service": "ipp"},
	}
	roles := []string{"front-desk", "clinical", "servers", "guest", "iot"}
	obs := make([]observe.Observation, 0, n)
	for i := 0; len(obs) < n; i++ {
		host := fmt.Sprintf("10.%d.%d.%d", i%200, (i/200)%250, i%250+1)
		base := observe.Observation{Location: fmt.Sprintf("loc-%d", i%300), Host: host, Source: "nmap", At: time.Unix(0, 0),
			Vantage: roles[i%5], VantageRole: roles[i%5], Segment: roles[(i+1)%5], SegmentRole: roles[(i+1)%5]}
		add := func(kind observe.Kind, port int, attrs map[string]any) {
			o := base
			o.Kind, o.Port, o.Attrs = kind, port, attrs
			if port > 0 {
				o.Proto = "tcp"
			}
			obs = append(obs, o)
		}
		switch r := i % 20; {
		case r < 8:
			add(observe.KindReach, 445, map[string]any{"state": "closed", "service": "microsoft-ds", "to_location": ""})
		case r < 13:
			add(observe.KindService, 80+i%8, services[i%len(services)])
		case r < 15:
			add(observe.KindHost, 0, map[string]any{"hostname": "", "mac": "02:00:00:00:00:01", "mac_vendor": "", "os": ""})
		case r < 17:
			add(observe.KindTLS, 443, map[string]any{"tls_versions": []string{"TLS1.2", "TLS1.3"}, "weak_ciphers": []string{},
				"cert_expired": i%97 == 0, "cert_self_signed": false, "cert_key_type": "RSA", "cert_key_bits": 2048})
		case r < 18:
			add(observe.KindSSH, 22, map[string]any{"auth_methods": []string{"publickey"}, "host_key_type": "ssh-ed25519"})
		case r < 19:
			add(observe.KindCheck, 21, map[string]any{"check": "vigil-ftp-anonymous", "engine": "nuclei"})
		default:
			add(observe.KindAccount, 0, map[string]any{"system": "emr", "username": fmt.Sprintf("user%d", i), "enabled": true,
				"mfa": []string{"true", "false", "unknown"}[i%3], "is_admin": i%50 == 0, "stale": i%7 == 0})
		}
	}
	return obs
}

// BenchmarkEvaluate1M is issue 5's target: the shipped rules over 1,000,000
// observations at 200,000 observations/s or more on one core (run with
// -cpu 1 -benchtime 1x).
func BenchmarkEvaluate1M(b *testing.B) {
	e, err := Load(Options{})
	if err != nil {
		b.Fatal(err)
	}
	obs := mixedObservations(1_000_000)
	b.ReportAllocs()
	b.ResetTimer()
	var findings int
	for i := 0; i < b.N; i++ {
		findings = len(e.Evaluate(obs, time.Unix(0, 0)))
	}
	b.ReportMetric(float64(findings), "findings")
	b.ReportMetric(float64(len(obs)*b.N)/b.Elapsed().Seconds(), "obs/s")
}
