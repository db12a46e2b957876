package telegrafin

import (
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/influxdata/telegraf"

	"github.com/vigilhq/vigil/observe"
)

// Attribute keys every KindMetric observation has.
const (
	AttrMeasurement = "measurement" // string: the metric's name (x509_cert, net_response, cpu, ...)
	AttrTags        = "tags"        // map[string]string: the metric's tags
	AttrFields      = "fields"      // map[string]any: the metric's fields (float64, int64, uint64, string, bool)
)

// Observation turns one telegraf metric into a KindMetric observation from
// source at location. Host, Port and Proto name what the metric is about
// when its measurement says so (the certificate's server for x509_cert,
// the probed address for net_response), else the reporting agent's `host`
// tag. x509_cert and net_response metrics also carry the facts vigil's TLS
// and service rules use (docs/telegraf.md).
func Observation(m telegraf.Metric, source, location string) observe.Observation {
	tags := m.Tags()
	fields := m.Fields()
	o := observe.Observation{
		Kind:     observe.KindMetric,
		Location: location,
		Source:   source,
		At:       m.Time().UTC(),
		Host:     tags["host"],
		Attrs: map[string]any{
			AttrMeasurement: m.Name(),
			AttrTags:        tags,
			AttrFields:      fields,
		},
	}
	switch m.Name() {
	case "x509_cert":
		x509Facts(&o, tags, fields)
	case "net_response":
		netResponseFacts(&o, tags, fields)
	}
	return o
}

// x509Facts adds the certificate facts in the shape the TLS probe writes
// them (scanner/tls.go), so one rule can judge both.
func x509Facts(o *observe.Observation, tags map[string]string, fields map[string]any) {
	a := o.Attrs
	a["cert_subject"] = tags["common_name"]
	a["cert_issuer"] = tags["issuer_common_name"]
	a["cert_type"] = tags["type"]
	a["cert_sig_alg"] = tags["signature_algorithm"]
	a["cert_sha1"] = strings.Contains(strings.ToUpper(tags["signature_algorithm"]), "SHA1")
	a["verification"] = tags["verification"]
	verr, _ := fields["verification_error"].(string)
	a["cert_verify_error"] = verr

	at := o.At
	if end, ok := intField(fields, "enddate"); ok {
		notAfter := time.Unix(end, 0).UTC()
		a["cert_not_after"] = notAfter.Format(time.RFC3339)
		left, ok := intField(fields, "expiry")
		if !ok {
			left = int64(notAfter.Sub(at) / time.Second)
		}
		a["cert_days_left"] = int(math.Floor(float64(left) / 86400))
		a["cert_expired"] = left < 0
	}
	if start, ok := intField(fields, "startdate"); ok {
		notBefore := time.Unix(start, 0).UTC()
		a["cert_not_before"] = notBefore.Format(time.RFC3339)
		age, ok := intField(fields, "age")
		if !ok {
			age = int64(at.Sub(notBefore) / time.Second)
		}
		a["cert_not_yet_valid"] = age < 0
	}

	// Where the certificate was read: a server for tcp://, https://,
	// smtp:// and udp:// sources, a file otherwise (then Host is the name
	// the certificate gives itself).
	o.Host = tags["common_name"]
	u, err := url.Parse(tags["source"])
	if err != nil {
		return
	}
	switch u.Scheme {
	case "tcp", "tcp4", "tcp6", "https", "smtp":
		o.Proto = "tcp"
	case "udp", "udp4", "udp6":
		o.Proto = "udp"
	default: // file, jks, pkcs12, wincertstore
		a["cert_file"] = u.Path
		return
	}
	o.Host = u.Hostname()
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "smtp":
			port = "25"
		}
	}
	o.Port, _ = strconv.Atoi(port)
}

// netResponseFacts adds the probe's verdict: result is success, timeout,
// connection_failed, read_failed or string_mismatch.
func netResponseFacts(o *observe.Observation, tags map[string]string, fields map[string]any) {
	o.Host = tags["server"]
	if h, _, err := net.SplitHostPort(o.Host); err == nil {
		o.Host = h
	}
	o.Port, _ = strconv.Atoi(tags["port"])
	o.Proto = tags["protocol"]
	o.Attrs["result"] = tags["result"]
	if code, ok := intField(fields, "result_code"); ok {
		o.Attrs["result_code"] = int(code)
	}
	if rt, ok := fields["response_time"].(float64); ok {
		o.Attrs["response_time"] = rt
	}
}

// intField reads an integer field whatever integer type the plugin (or
// the line protocol: 1i, 1u) gave it.
func intField(fields map[string]any, key string) (int64, bool) {
	switch v := fields[key].(type) {
	case int64:
		return v, true
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case int:
		return int64(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}
