package alerts

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Retry bounds how a channel retries a delivery that failed for a reason
// that may pass: a network error, a timeout, HTTP 408, 429 or 5xx, an SMTP
// 4xx reply. Other failures (HTTP 4xx, SMTP 5xx, a server that refuses
// STARTTLS) are returned at once.
type Retry struct {
	// Attempts is the most tries in all (default 5).
	Attempts int
	// Base is the wait before the first retry (default 1s); each retry
	// doubles it, up to Max (default 1m), with jitter.
	Base, Max time.Duration
	// MaxRetryAfter caps a server's Retry-After (default 5m): a longer one
	// is waited for only this long.
	MaxRetryAfter time.Duration

	// sleep waits for d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
}

// Defaults for Retry.
const (
	DefaultAttempts      = 5
	DefaultRetryBase     = time.Second
	DefaultRetryMax      = time.Minute
	DefaultMaxRetryAfter = 5 * time.Minute
)

func (r Retry) withDefaults() Retry {
	if r.Attempts <= 0 {
		r.Attempts = DefaultAttempts
	}
	if r.Base <= 0 {
		r.Base = DefaultRetryBase
	}
	if r.Max <= 0 {
		r.Max = DefaultRetryMax
	}
	if r.MaxRetryAfter <= 0 {
		r.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if r.sleep == nil {
		r.sleep = sleepCtx
	}
	return r
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ErrPermanent is wrapped by delivery failures that retrying cannot fix
// (HTTP 4xx other than 408 and 429, SMTP 5xx, TLS refused).
var ErrPermanent = errors.New("permanent delivery failure")

// permanent marks err as not worth retrying.
type permanentError struct{ err error }

func (e permanentError) Error() string            { return e.err.Error() }
func (e permanentError) Unwrap() []error          { return []error{e.err, ErrPermanent} }
func permanent(err error) error                   { return permanentError{err} }
func (e retryAfterError) Error() string           { return e.err.Error() }
func (e retryAfterError) Unwrap() error           { return e.err }
func retryAfter(err error, d time.Duration) error { return retryAfterError{err, d} }

// retryAfterError is a transient failure whose server asked to wait d.
type retryAfterError struct {
	err error
	d   time.Duration
}

// do runs attempt until it succeeds, fails permanently, the attempts run
// out or ctx is done. Each attempt gets its own timeout.
func (r Retry) do(ctx context.Context, timeout time.Duration, attempt func(ctx context.Context) error) error {
	r = r.withDefaults()
	var err error
	for i := 0; i < r.Attempts; i++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err = attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrPermanent) || ctx.Err() != nil || i == r.Attempts-1 {
			break
		}
		wait := r.backoff(i)
		var ra retryAfterError
		if errors.As(err, &ra) && ra.d > 0 {
			wait = min(ra.d, r.MaxRetryAfter)
		}
		if serr := r.sleep(ctx, wait); serr != nil {
			break
		}
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (gave up: %v)", err, ctx.Err())
	}
	return err
}

// backoff is the wait before retry i+1: Base·2^i capped at Max, with
// "equal jitter" (half fixed, half random) so that many senders retrying
// after one outage do not arrive together.
func (r Retry) backoff(i int) time.Duration {
	d := r.Base << min(i, 30)
	if d <= 0 || d > r.Max {
		d = r.Max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
