package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/store"
)

var _ alerts.Ledger = (*AlertLedger)(nil)

// The ledger on PostgreSQL: an alert held for a channel stays pending
// across replicas (two connections to one database) until one delivers
// it; then no replica sees it pending or unsent, and holding it again
// changes nothing.
func TestAlertLedgerSharedByReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	at := func(m int) time.Time { return time.Date(2026, 3, 1, 9, m, 0, 0, time.UTC) }
	body := []byte(`{"kind":"new-finding","key":"k1"}`)
	la, lb := a.AlertLedger(), b.AlertLedger()
	if err := la.Hold(ctx, []store.PendingAlert{{Channel: "hook", Key: "k1", Alert: body, Created: at(0)}}); err != nil {
		t.Fatal(err)
	}
	if err := lb.Attempted(ctx, "hook", []string{"k1"}, at(1)); err != nil {
		t.Fatal(err)
	}
	p, err := lb.Pending(ctx)
	if err != nil || len(p) != 1 || p[0].Attempts != 1 || string(p[0].Alert) != string(body) {
		t.Fatalf("Pending on the other replica = %+v, %v; want k1 once, 1 attempt", p, err)
	}
	if err := lb.Record(ctx, "hook", "k1", at(2)); err != nil {
		t.Fatal(err)
	}
	if sent, err := la.Sent(ctx, "hook", "k1"); err != nil || !sent {
		t.Fatalf("Sent on the first replica = %v, %v; want true", sent, err)
	}
	if err := la.Hold(ctx, []store.PendingAlert{{Channel: "hook", Key: "k1", Alert: body, Created: at(3)}}); err != nil {
		t.Fatal(err)
	}
	if p, _ := la.Pending(ctx); len(p) != 0 {
		t.Errorf("Pending after delivery = %+v; want none", p)
	}
	dropped, err := la.DropPending(ctx, at(10))
	if err != nil || len(dropped) != 0 {
		t.Errorf("DropPending = %+v, %v; want none", dropped, err)
	}
}
