//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import (
	"fmt"
	"os"
)

// acquireLock on platforms without flock only creates the lock file: SQLite's
// own locking still keeps the database consistent, but a second vigil process
// is not refused up front.
// TODO: LockFileEx on Windows.
func acquireLock(dbPath, lockPath string) (*fileLock, error) {
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store %s: open lock file: %w", dbPath, err)
	}
	l := &fileLock{f: f}
	l.writePID()
	return l, nil
}

func unlock(*os.File) {}
