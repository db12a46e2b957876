//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrRunning is returned by State.Lock when another agent process holds
// the state directory.
var ErrRunning = errors.New("another vigil agent is running with this state directory")

// Lock takes the state directory for this process: two agents on one
// spool would send its batches twice. The kernel drops the lock when the
// process dies, so a crash leaves no stale lock. Call the returned
// function to release it.
func (s *State) Lock() (func(), error) {
	f, err := os.OpenFile(s.path(lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", s.Dir, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			b, _ := os.ReadFile(s.path(lockFile))
			return nil, fmt.Errorf("%w (pid %s, %s)", ErrRunning, strings.TrimSpace(string(b)), s.Dir)
		}
		return nil, fmt.Errorf("state directory %s: lock: %w", s.Dir, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Running reports whether an agent process holds the state directory, and
// its pid.
func (s *State) Running() (bool, int) {
	unlock, err := s.Lock()
	if err == nil {
		unlock()
		return false, 0
	}
	if !errors.Is(err, ErrRunning) {
		return false, 0
	}
	b, _ := os.ReadFile(s.path(lockFile))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return true, pid
}
