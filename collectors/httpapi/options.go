package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// Options are the settings every cloud identity collector's Source has in
// common: how it reaches the API, what clock stamps its observations, where
// it logs, and how far it pages and retries. Each Source embeds them, so
// they read as its own fields (s.HTTPClient, s.MaxPages). The zero value is
// the production default.
type Options struct {
	// HTTPClient sends every request, token requests included; nil means
	// NewHTTPClient with the source's ca_file: timeouts, TLS 1.2+, proxy
	// from the environment.
	HTTPClient *http.Client
	// Now stamps the observations; nil means time.Now. It is not the
	// client's clock for rate-limit waits, which follow the server's Date.
	Now func() time.Time
	// MaxPages bounds each listing (default DefaultMaxPages); a longer
	// one is an error, never a silently short list.
	MaxPages int
	// MaxRetries bounds retries of a throttled request (default
	// DefaultMaxRetries).
	MaxRetries int
	// Logger receives throttling waits and degradations; nil discards.
	Logger *slog.Logger
}

// Time is the time a collection is stamped with: Now(), else the current
// time.
func (o Options) Time() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// NewClient returns a Client for source (the collector's Name) carrying
// these options: HTTPClient, or NewHTTPClient(caFile) when it is nil; the
// logger, never nil; the page and retry limits. The caller sets Base, Auth,
// AuthHint and Redact, and sends token requests through the client's HTTP
// so they share its timeouts, proxy and trusted CAs. Errors start with
// source.
func (o Options) NewClient(source, caFile string) (*Client, error) {
	hc := o.HTTPClient
	if hc == nil {
		var err error
		if hc, err = NewHTTPClient(caFile); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Client{
		Source:     source,
		HTTP:       hc,
		Logger:     log,
		MaxPages:   o.MaxPages,
		MaxRetries: o.MaxRetries,
	}, nil
}
