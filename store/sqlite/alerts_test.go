package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vigilhq/vigil/alerts"
	"github.com/vigilhq/vigil/store"
)

var _ alerts.Ledger = (*AlertLedger)(nil)

// An alert held for a channel stays pending across a reopen until the
// channel delivers it; once sent it is never pending again, and holding
// it again changes nothing. Channels are independent.
func TestAlertLedgerPendingThenSent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vigil.db")
	s := openT(t, path)
	l := s.AlertLedger()
	body := []byte(`{"kind":"new-finding","key":"k1"}`)
	if err := l.Hold(ctx, []store.PendingAlert{{Channel: "hook", Key: "k1", Alert: body, Created: at(0)}, {Channel: "mail", Key: "k1", Alert: body, Created: at(0)}}); err != nil {
		t.Fatal(err)
	}
	if sent, err := l.Sent(ctx, "hook", "k1"); err != nil || sent {
		t.Fatalf("Sent before delivery = %v, %v; want false", sent, err)
	}
	if err := l.Attempted(ctx, "hook", []string{"k1"}, at(1)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openT(t, path)
	l = s.AlertLedger()
	p, err := l.Pending(ctx)
	if err != nil || len(p) != 2 {
		t.Fatalf("Pending after reopen = %v, %v; want 2", p, err)
	}
	for _, a := range p {
		if string(a.Alert) != string(body) || !a.Created.Equal(at(0)) {
			t.Errorf("pending %s/%s = %+v", a.Channel, a.Key, a)
		}
		if a.Channel == "hook" && (a.Attempts != 1 || !a.LastAttempt.Equal(at(1))) {
			t.Errorf("hook attempts = %d at %v, want 1 at %v", a.Attempts, a.LastAttempt, at(1))
		}
	}
	if err := l.Record(ctx, "hook", "k1", at(2)); err != nil {
		t.Fatal(err)
	}
	if sent, _ := l.Sent(ctx, "hook", "k1"); !sent {
		t.Error("hook/k1 not sent after Record")
	}
	if sent, _ := l.Sent(ctx, "mail", "k1"); sent {
		t.Error("mail/k1 sent: channels must be independent")
	}
	if err := l.Hold(ctx, []store.PendingAlert{{Channel: "hook", Key: "k1", Alert: body}}); err != nil {
		t.Fatal(err)
	}
	p, _ = l.Pending(ctx)
	if len(p) != 1 || p[0].Channel != "mail" {
		t.Fatalf("Pending = %+v, want only mail/k1", p)
	}
	// Record without a pending row (a channel delivered at once).
	if err := l.Record(ctx, "slack", "k2", at(3)); err != nil {
		t.Fatal(err)
	}
	if sent, _ := l.Sent(ctx, "slack", "k2"); !sent {
		t.Error("slack/k2 not sent")
	}
	dropped, err := l.DropPending(ctx, at(1))
	if err != nil || len(dropped) != 1 || dropped[0].Channel != "mail" {
		t.Fatalf("DropPending = %+v, %v; want mail/k1", dropped, err)
	}
	if p, _ = l.Pending(ctx); len(p) != 0 {
		t.Fatalf("Pending after drop = %+v", p)
	}
}
