package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Agent batches arrive from hundreds of agents at once and every write
// waits for the one writer; each in a transaction of its own, the
// commit (an fsync on SQLite; BEGIN, the advisory lock and COMMIT on
// PostgreSQL) costs as much as the batch. So the writer that gets the
// lock runs every agent batch queued behind it in one transaction, each
// batch in a savepoint of its own: a batch that fails (a duplicate, a
// foreign scan) rolls back alone, and one that succeeds is committed with
// the others or not at all, so a batch is still stored exactly once and
// its id with it.

// DefaultGroupLimit bounds the batches one transaction commits, so a
// group's latency stays that of a few batches; see SetGroupLimit.
const DefaultGroupLimit = 32

// SetGroupLimit sets how many agent batches one transaction may commit
// (DefaultGroupLimit when unset); 1 gives every batch a transaction of its
// own. A backend whose commit is cheap next to a savepoint's round trips
// (PostgreSQL) may prefer 1.
func (d *DB) SetGroupLimit(n int) { d.groupLimit = max(n, 1) }

// groupTimeout bounds one group's transaction: it no longer runs under
// any one caller's context, since another caller's batch shares it.
const groupTimeout = 2 * time.Minute

// Group op states.
const (
	opQueued    int32 = iota
	opTaken           // a writer runs it; its result will arrive on done
	opAbandoned       // its caller gave up before a writer took it
)

type groupOp struct {
	ctx   context.Context
	fn    func(ctx context.Context, tx *sql.Tx) error
	state atomic.Int32
	done  chan error // buffered: the writer never waits for the caller
}

// groupQueue is the agent batches waiting for the writer.
type groupQueue struct {
	mu  sync.Mutex
	ops []*groupOp
}

// writeGrouped runs fn in a write transaction, possibly shared with other
// writeGrouped calls queued at the same time, each in its own savepoint.
// fn must use the context it is given for its statements: the
// transaction is not bound to ctx. ctx bounds the wait for the writer;
// once a writer has taken the batch, it runs to the end and its result
// is returned, as a single write's commit would be.
func (d *DB) writeGrouped(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	op := &groupOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	d.group.mu.Lock()
	d.group.ops = append(d.group.ops, op)
	d.group.mu.Unlock()
	for {
		select {
		case err := <-op.done:
			return err
		default:
		}
		select {
		case err := <-op.done:
			return err
		case d.sem <- struct{}{}:
			d.runGroup()
		case <-ctx.Done():
			if op.state.CompareAndSwap(opQueued, opAbandoned) {
				return ctx.Err()
			}
			return <-op.done
		}
	}
}

// runGroup, holding the write lock, runs the queued batches (at most the
// group limit, oldest first) in one transaction and releases the lock.
func (d *DB) runGroup() {
	defer func() { <-d.sem }()
	d.group.mu.Lock()
	limit := d.groupLimit
	if limit == 0 {
		limit = DefaultGroupLimit
	}
	n := min(len(d.group.ops), limit)
	ops := make([]*groupOp, 0, n)
	for _, op := range d.group.ops[:n] {
		if op.state.CompareAndSwap(opQueued, opTaken) {
			ops = append(ops, op)
		}
	}
	rest := copy(d.group.ops, d.group.ops[n:])
	clear(d.group.ops[rest:])
	d.group.ops = d.group.ops[:rest]
	d.group.mu.Unlock()
	if len(ops) == 0 {
		return
	}
	errs := d.runOps(ops)
	for i, op := range ops {
		op.done <- errs[i]
	}
}

// runOps runs ops in one transaction and returns each one's result.
func (d *DB) runOps(ops []*groupOp) []error {
	errs := make([]error, len(ops))
	// When the transaction fails, every batch in it failed, even one that
	// found itself a duplicate of another in the same transaction.
	all := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ops[0].ctx), groupTimeout)
	defer cancel()
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return all(fmt.Errorf("begin transaction: %w", err))
	}
	if d.txStart != nil {
		if err := d.txStart(ctx, tx); err != nil {
			_ = tx.Rollback()
			return all(fmt.Errorf("begin transaction: %w", err))
		}
	}
	// A lone batch needs no savepoint: its error rolls the transaction
	// back, as a write of its own would.
	savepoints := len(ops) > 1
	stored := 0
	for i, op := range ops {
		if err := op.ctx.Err(); err != nil {
			errs[i] = err // its caller gave up while the batch waited
			continue
		}
		if savepoints {
			if _, err := tx.ExecContext(ctx, `SAVEPOINT agent_batch`); err != nil {
				_ = tx.Rollback()
				return all(fmt.Errorf("savepoint: %w", err))
			}
		}
		errs[i] = op.fn(ctx, tx)
		switch {
		case errs[i] != nil && savepoints:
			if _, err := tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT agent_batch`); err != nil {
				_ = tx.Rollback()
				return all(fmt.Errorf("roll back to savepoint: %w (after %w)", err, errs[i]))
			}
			fallthrough
		case savepoints:
			if _, err := tx.ExecContext(ctx, `RELEASE SAVEPOINT agent_batch`); err != nil {
				_ = tx.Rollback()
				return all(fmt.Errorf("release savepoint: %w", err))
			}
		}
		if errs[i] == nil {
			stored++
		}
	}
	if stored == 0 {
		_ = tx.Rollback()
		return errs
	}
	if d.beforeCommit != nil {
		if err := d.beforeCommit(ctx); err != nil {
			_ = tx.Rollback()
			return all(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return all(fmt.Errorf("commit: %w", err))
	}
	return errs
}

// writeWith runs fn in writeGrouped's transaction when grouped, else in a
// write of its own under ctx.
func (d *DB) writeWith(ctx context.Context, grouped bool, fn func(ctx context.Context, tx *sql.Tx) error) error {
	if grouped {
		return d.writeGrouped(ctx, fn)
	}
	return d.write(ctx, func(tx *sql.Tx) error { return fn(ctx, tx) })
}
