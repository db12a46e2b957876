package jobs

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// locker hands out named locks held while a job runs: a location's scans,
// a tenant's alert cycles.
type locker interface {
	// tryLock takes the lock if it is free; release gives it back.
	tryLock(ctx context.Context, key string) (release func(), ok bool, err error)
}

// lockClass is the first half of vigil's two-key advisory locks ("vgjl"),
// a key space apart from the store's one-key write lock.
const lockClass = 0x76676a6c

// pgLocker holds PostgreSQL session advisory locks on a connection of its
// own: a replica that dies drops its connection, and its locks with it.
type pgLocker struct{ pool *pgxpool.Pool }

func (l pgLocker) tryLock(ctx context.Context, key string) (func(), bool, error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, int32(lockClass), key).Scan(&ok); err != nil {
		conn.Release()
		return nil, false, err
	}
	if !ok {
		conn.Release()
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, int32(lockClass), key); err != nil {
			// Closing the connection drops the lock; the pool replaces it.
			_ = conn.Conn().Close(ctx)
		}
		conn.Release()
	}, true, nil
}

// memLocker is the locks of a single process (the SQLite queue, whose
// data_dir one vigil serve owns).
type memLocker struct {
	mu   sync.Mutex
	held map[string]bool
}

func newMemLocker() *memLocker { return &memLocker{held: map[string]bool{}} }

func (l *memLocker) tryLock(_ context.Context, key string) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key] {
		return nil, false, nil
	}
	l.held[key] = true
	return func() {
		l.mu.Lock()
		delete(l.held, key)
		l.mu.Unlock()
	}, true, nil
}
