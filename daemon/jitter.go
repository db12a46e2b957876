package daemon

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"time"

	"github.com/robfig/cron/v3"
)

// jitterRef is the fixed instant a schedule's interval is measured from,
// so that a location's jitter does not depend on when the daemon started.
var jitterRef = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC) // a Monday

// Interval is the shortest gap between the next few times sched falls due
// after a fixed reference instant: a day for "0 2 * * *", an hour for
// "@hourly", one second for "@every 1s". It is zero for a schedule that
// never falls due.
func Interval(sched cron.Schedule) time.Duration {
	var shortest time.Duration
	t := sched.Next(jitterRef)
	for range 8 {
		if t.IsZero() {
			break
		}
		n := sched.Next(t)
		if n.IsZero() {
			break
		}
		if d := n.Sub(t); shortest == 0 || d < shortest {
			shortest = d
		}
		t = n
	}
	return shortest
}

// JitterBound is the largest jitter a schedule gets: 10% of its interval,
// and never more than max. A negative max turns jitter off.
func JitterBound(sched cron.Schedule, max time.Duration) time.Duration {
	if max < 0 {
		return 0
	}
	return min(max, Interval(sched)/10)
}

// Jitter is how long after each of sched's times location's scan starts:
// a fraction of JitterBound(sched, max) fixed by a hash of the location
// id, so that 300 sites on "0 2 * * *" spread over 02:00-02:05 instead of
// starting together, and each site starts at the same minute every night.
func Jitter(location string, sched cron.Schedule, max time.Duration) time.Duration {
	bound := JitterBound(sched, max)
	if bound <= 0 {
		return 0
	}
	// SHA-256 rather than a faster hash: ids like site-001, site-002
	// must land far apart, and FNV's high bits barely move between them.
	sum := sha256.Sum256([]byte(location))
	// The hash as a fraction of 2^64, scaled to [0, bound).
	hi, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(bound))
	return time.Duration(hi)
}

// jittered falls due offset after each time its schedule does.
type jittered struct {
	cron.Schedule
	offset time.Duration
}

// Next implements cron.Schedule.
func (j jittered) Next(t time.Time) time.Time {
	n := j.Schedule.Next(t.Add(-j.offset))
	if n.IsZero() {
		return n
	}
	return n.Add(j.offset)
}
