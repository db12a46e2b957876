//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package sqlite

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// acquireLock takes an exclusive flock on lockPath without waiting. flock
// locks belong to the open file, so a second Open in the same process is
// refused too, and the kernel drops the lock when the holder dies: a crash
// never leaves a stale lock behind.
func acquireLock(dbPath, lockPath string) (*fileLock, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: open lock file: %w", dbPath, err)
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
			return nil, lockedError(dbPath, lockPath, f)
		}
		return nil, fmt.Errorf("store %s: lock %s: %w", dbPath, lockPath, err)
	}
	l := &fileLock{f: f}
	l.writePID()
	return l, nil
}

func unlock(f *os.File) { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) }
