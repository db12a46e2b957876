package users

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ThrottlePolicy is how one kind of login counter slows and stops guessing.
// The first Free attempts are immediate; after that each attempt must wait
// Base·2^(n-Free-1), at most MaxDelay, after the previous one; the
// LockoutAfter-th attempt without a success locks the counter for Lockout,
// after which it starts from zero.
type ThrottlePolicy struct {
	Free         int
	Base         time.Duration
	MaxDelay     time.Duration
	LockoutAfter int
	Lockout      time.Duration
}

// DefaultAccountThrottle allows 3 quick tries, then waits 1 s, 2 s, 4 s, …
// and locks the account for 15 minutes at the 10th failure (about 40
// guesses an hour, whatever the number of attacking addresses).
var DefaultAccountThrottle = ThrottlePolicy{Free: 3, Base: time.Second, MaxDelay: 5 * time.Minute, LockoutAfter: 10, Lockout: 15 * time.Minute}

// DefaultIPThrottle is looser, for a front desk behind one NAT address:
// 20 quick failures, then backoff up to a minute, and an hour's block at 100.
var DefaultIPThrottle = ThrottlePolicy{Free: 20, Base: time.Second, MaxDelay: time.Minute, LockoutAfter: 100, Lockout: time.Hour}

// ErrThrottled says a login was refused without checking the password
// because the account or address has failed too often.
var ErrThrottled = errors.New("too many failed sign-ins: wait and try again")

// ThrottledError carries when the next attempt may be made.
type ThrottledError struct {
	RetryAt time.Time
	Locked  bool // the lockout, not just the backoff, is in force
}

// Error says the sign-in was throttled and until when.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", ErrThrottled, e.RetryAt.UTC().Format(time.RFC3339))
}

// Unwrap lets errors.Is(err, ErrThrottled) match.
func (e *ThrottledError) Unwrap() error { return ErrThrottled }

// delay is the wait imposed after the n-th failure, and whether it is the
// lockout.
func (p ThrottlePolicy) delay(n int) (time.Duration, bool) {
	if p.LockoutAfter > 0 && n >= p.LockoutAfter {
		return p.Lockout, true
	}
	if n <= p.Free {
		return 0, false
	}
	d := p.Base
	for i := p.Free + 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay), false
}

// throttle applies policies to counters in a Store.
type throttle struct {
	store Store
	now   func() time.Time
}

const maxSwapRetries = 16

// reserve counts an attempt on key before the password is checked, so that
// concurrent guesses each see the previous ones, or refuses it while the
// counter's backoff or lockout lasts. A successful sign-in calls release.
func (t throttle) reserve(ctx context.Context, key ThrottleKey, p ThrottlePolicy) error {
	for range maxSwapRetries {
		now := t.now()
		a, err := t.store.LoginAttempts(ctx, key)
		if err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		if now.Before(a.NextAllowed) {
			_, locked := p.delay(a.Failures)
			return &ThrottledError{RetryAt: a.NextAllowed, Locked: locked}
		}
		next := a
		if p.LockoutAfter > 0 && a.Failures >= p.LockoutAfter {
			next.Failures = 0 // the lockout has run out: start again
		}
		next.Failures++
		next.LastFailure = now
		d, _ := p.delay(next.Failures)
		next.NextAllowed = now.Add(d)
		ok, err := t.store.SwapLoginAttempts(ctx, key, a, next)
		if err != nil {
			return fmt.Errorf("login throttle: %w", err)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("login throttle: counter %s/%s too contended", key.Kind, key.Subject)
}

// release undoes a reservation after a success: an account counter starts
// again from zero; an address counter only drops this attempt, so one good
// account does not reset the budget of an address guessing others.
func (t throttle) release(ctx context.Context, key ThrottleKey, p ThrottlePolicy, reset bool) error {
	for range maxSwapRetries {
		a, err := t.store.LoginAttempts(ctx, key)
		if err != nil || a.Version == 0 {
			return err
		}
		next := Attempts{}
		if !reset && a.Failures > 1 {
			next = a
			next.Failures--
			d, _ := p.delay(next.Failures)
			next.NextAllowed = next.LastFailure.Add(d)
		}
		ok, err := t.store.SwapLoginAttempts(ctx, key, a, next)
		if err != nil || ok {
			return err
		}
	}
	return fmt.Errorf("login throttle: counter %s/%s too contended", key.Kind, key.Subject)
}
