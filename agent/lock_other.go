//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package agent

import "errors"

// ErrRunning is returned by State.Lock when another agent process holds
// the state directory.
var ErrRunning = errors.New("another vigil agent is running with this state directory")

// Lock is a no-op where flock is missing: run one agent per state
// directory.
func (s *State) Lock() (func(), error) { return func() {}, nil }

// Running cannot tell without flock.
func (s *State) Running() (bool, int) { return false, 0 }
