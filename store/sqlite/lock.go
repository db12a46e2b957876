package sqlite

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil/store"
)

// fileLock is the exclusive lock beside the database that keeps a second
// vigil process from opening it for writing. The holder writes its PID into
// the file so the loser can say who has it. The file is never removed:
// removing a lock file races with the next process locking it.
type fileLock struct {
	f *os.File
}

// lockedError is what a second opener gets.
func lockedError(dbPath, lockPath string, f *os.File) error {
	who := "another vigil process"
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0) // the holder may not have written its PID yet
	if pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n]))); err == nil && pid > 0 {
		who = "vigil process " + strconv.Itoa(pid)
	}
	return fmt.Errorf("store %s: %w: %s holds the lock file %s; stop it or point --db at another file",
		dbPath, store.ErrLocked, who, lockPath)
}

// writePID records this process in the lock file it holds.
func (l *fileLock) writePID() {
	// Best effort: the lock works without it, the message is just vaguer.
	if err := l.f.Truncate(0); err == nil {
		_, _ = l.f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
}

func (l *fileLock) release() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Truncate(0) // still ours: nobody else can hold it yet
	unlock(l.f)
	l.f.Close()
	l.f = nil
}
