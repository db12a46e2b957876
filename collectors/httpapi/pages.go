package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Pages fetches the listing that starts at first and every page after it.
// Each page's body is decoded into a new T and passed to each; next returns
// the following page's URL ("" on the last page) from the headers or the
// decoded page. grant is what to grant on 403 (see Client.Get).
//
// A listing is all or nothing: any failed page, a page that is not JSON, a
// next link off the API's host, a link that repeats, or more than
// Client.MaxPages pages ends it with an error, never with a short list that
// looks complete.
func Pages[T any](ctx context.Context, c *Client, first, grant string, next func(h http.Header, page *T) string, each func(page *T) error) error {
	seen := map[string]bool{}
	ref := first
	for n := 1; ; n++ {
		u, err := c.resolve(ref)
		if err != nil {
			return err
		}
		if seen[u.String()] {
			return &Error{Source: c.Source, Path: u.Path, Kind: ErrIncomplete,
				Err: fmt.Errorf("page %d links back to an earlier page", n)}
		}
		seen[u.String()] = true
		h, body, err := c.fetch(ctx, u, grant)
		if err != nil {
			return err
		}
		page := new(T)
		if err := json.Unmarshal(body, page); err != nil {
			e := c.malformed(u.Path, err)
			e.Hint = fmt.Sprintf("page %d", n)
			return e
		}
		if err := each(page); err != nil {
			return err
		}
		ref = next(h, page)
		if ref == "" {
			return nil
		}
		if n >= c.maxPages() {
			return &Error{Source: c.Source, Path: u.Path, Kind: ErrIncomplete,
				Err: fmt.Errorf("more than %d pages: raise the source's page limit if the directory is really this large", c.maxPages())}
		}
		if err := ctx.Err(); err != nil {
			return &Error{Source: c.Source, Path: u.Path, Kind: ErrTransport, Err: err}
		}
	}
}

// NextLink returns the target of the Link header's rel="next" entry (RFC
// 8288), as Okta pages: `<https://x.okta.com/api/v1/users?after=...>;
// rel="next"`. Several Link headers and comma-separated entries are both
// accepted.
func NextLink(h http.Header) string {
	for _, v := range h.Values("Link") {
		for v != "" {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				break
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				break
			}
			target := v[1:end]
			v = v[end+1:]
			params := v
			if i := strings.Index(v, ",<"); i >= 0 {
				params, v = v[:i], v[i+1:]
			} else if i := strings.Index(v, ", <"); i >= 0 {
				params, v = v[:i], v[i+1:]
			} else {
				v = ""
			}
			for _, p := range strings.Split(params, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, rel := range strings.Fields(strings.Trim(strings.TrimSpace(val), `"`)) {
					if strings.EqualFold(rel, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// ParseTime reads an RFC 3339 timestamp as the identity APIs send them
// ("2025-03-01T14:05:00Z", "2025-03-01T14:05:00.123Z"). Empty, and the zero
// dates some APIs use for "never" (year 1601 or earlier, or the Unix
// epoch), give the zero time and ok; anything else unparsable gives ok
// false.
func ParseTime(s string) (t time.Time, ok bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false
	}
	if t.Year() <= 1601 || t.Equal(time.Unix(0, 0)) {
		return time.Time{}, true
	}
	return t.UTC(), true
}
