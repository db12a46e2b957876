package storetest

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/internal/sqlstore"
)

func testOpenRefusesNewerSchema(t *testing.T, h *Harness) {
	path := h.New(t)
	s := h.open(t, path)
	if _, err := s.SQL().Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', '2030-01-01T00:00:00.000000000Z')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := h.Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "v999") || !strings.Contains(err.Error(), "upgrade vigil") {
		t.Fatalf("Open on a v999 database: %v, want an error asking to upgrade vigil", err)
	}
}

func testFindingLifecycleAcrossScans(t *testing.T, h *Harness) {
	s := h.fresh(t, WithClock(func() time.Time { return at(1) }))
	ctx := context.Background()
	both := []string{"downtown", "uptown"}

	steps := []struct {
		name         string
		scan         observe.Scan
		sees         []observe.Finding
		after        func(t *testing.T) // runs after the scan
		wantCurrent  map[string]observe.Status
		wantResolved []string
		wantState    map[string]state
	}{
		{
			name:        "first scan opens everything it sees",
			scan:        observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: both, Complete: true},
			sees:        []observe.Finding{rdp, telnet, ftp, tls10},
			wantCurrent: map[string]observe.Status{rdp.ID: "open", telnet.ID: "open", ftp.ID: "open", tls10.ID: "open"},
			after: func(t *testing.T) {
				if _, err := s.DecideFinding(ctx, tls10.ID, observe.Decision{Status: observe.StatusAccepted, By: "owner", Reason: "printer only, replaced in Q3", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}); err != nil {
					t.Fatal(err)
				}
			},
			wantState: map[string]state{
				rdp.ID: {"open", at(0), at(0)}, telnet.ID: {"open", at(0), at(0)},
				ftp.ID: {"open", at(0), at(0)}, tls10.ID: {"accepted", at(0), at(0)},
			},
		},
		{
			name:         "complete scan of downtown resolves what it no longer sees, leaves uptown alone",
			scan:         observe.Scan{ID: "s2", StartedAt: at(24), FinishedAt: at(25), Locations: []string{"downtown"}, Complete: true},
			sees:         []observe.Finding{rdp, tls10},
			wantCurrent:  map[string]observe.Status{rdp.ID: "open", tls10.ID: "accepted"},
			wantResolved: sortedIDs(telnet),
			wantState: map[string]state{
				rdp.ID: {"open", at(0), at(25)}, telnet.ID: {"resolved", at(0), at(0)},
				ftp.ID: {"open", at(0), at(0)}, tls10.ID: {"accepted", at(0), at(25)},
			},
		},
		{
			name: "incomplete scan resolves nothing",
			scan: observe.Scan{ID: "s3", StartedAt: at(48), FinishedAt: at(49), Locations: both, Complete: false,
				Errors: []string{"nmap: interrupted"}},
			sees: nil,
			wantState: map[string]state{
				rdp.ID: {"open", at(0), at(25)}, telnet.ID: {"resolved", at(0), at(0)},
				ftp.ID: {"open", at(0), at(0)}, tls10.ID: {"accepted", at(0), at(25)},
			},
		},
		{
			name:         "a resolved finding that returns is reopened with its first_seen kept",
			scan:         observe.Scan{ID: "s4", StartedAt: at(72), FinishedAt: at(73), Locations: []string{"downtown"}, Complete: true},
			sees:         []observe.Finding{telnet, tls10},
			wantCurrent:  map[string]observe.Status{telnet.ID: "open", tls10.ID: "accepted"},
			wantResolved: sortedIDs(rdp),
			wantState: map[string]state{
				rdp.ID: {"resolved", at(0), at(25)}, telnet.ID: {"open", at(0), at(73)},
				ftp.ID: {"open", at(0), at(0)}, tls10.ID: {"accepted", at(0), at(73)},
			},
		},
		{
			name:        "accepted finding absent from a complete scan stays accepted",
			scan:        observe.Scan{ID: "s5", StartedAt: at(96), FinishedAt: at(97), Locations: both, Complete: true},
			sees:        []observe.Finding{telnet, ftp},
			wantCurrent: map[string]observe.Status{telnet.ID: "open", ftp.ID: "open"},
			wantState: map[string]state{
				rdp.ID: {"resolved", at(0), at(25)}, telnet.ID: {"open", at(0), at(97)},
				ftp.ID: {"open", at(0), at(97)}, tls10.ID: {"accepted", at(0), at(73)},
			},
		},
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			current, resolved := finishT(t, s, st.scan, st.sees...)
			gotCurrent := map[string]observe.Status{}
			for _, f := range current {
				gotCurrent[f.ID] = f.Status
				want := st.wantState[f.ID]
				if !f.FirstSeen.Equal(want.first) || !f.LastSeen.Equal(want.last) {
					t.Errorf("current %s: first/last seen %v/%v, want %v/%v", f.Rule, f.FirstSeen, f.LastSeen, want.first, want.last)
				}
			}
			if len(st.wantCurrent) == 0 {
				st.wantCurrent = map[string]observe.Status{}
			}
			if !reflect.DeepEqual(gotCurrent, st.wantCurrent) {
				t.Errorf("current statuses = %v, want %v", gotCurrent, st.wantCurrent)
			}
			if got := ids(resolved); !slices.Equal(got, st.wantResolved) && len(got)+len(st.wantResolved) > 0 {
				t.Errorf("resolved = %v, want %v", got, st.wantResolved)
			}
			for _, f := range resolved {
				if f.Status != observe.StatusResolved {
					t.Errorf("resolved %s returned with status %s", f.Rule, f.Status)
				}
			}
			if st.after != nil {
				st.after(t)
			}
			stored := byID(t, s)
			for id, want := range st.wantState {
				got, ok := stored[id]
				if !ok {
					t.Errorf("finding %s missing from store", id)
					continue
				}
				if got.Status != want.status || !got.FirstSeen.Equal(want.first) || !got.LastSeen.Equal(want.last) {
					t.Errorf("%s: stored %s first %v last %v; want %s first %v last %v", got.Rule,
						got.Status, got.FirstSeen, got.LastSeen, want.status, want.first, want.last)
				}
			}
		})
		if !ok {
			t.FailNow() // later steps build on this one
		}
	}

	t.Run("history", func(t *testing.T) {
		type ev struct {
			scan  string
			at    time.Time
			event store.Event
		}
		for _, tc := range []struct {
			f    observe.Finding
			want []ev
		}{
			{telnet, []ev{{"s1", at(0), "opened"}, {"s2", at(25), "resolved"}, {"s4", at(73), "reopened"}, {"s5", at(97), "seen"}}},
			{rdp, []ev{{"s1", at(0), "opened"}, {"s2", at(25), "seen"}, {"s4", at(73), "resolved"}}},
			{tls10, []ev{{"s1", at(0), "opened"}, {"", at(1), "accepted"}, {"s2", at(25), "seen"}, {"s4", at(73), "seen"}}},
		} {
			hist, err := s.FindingHistory(ctx, tc.f.ID)
			if err != nil {
				t.Fatal(err)
			}
			var got []ev
			for _, e := range hist {
				got = append(got, ev{e.ScanID, e.At, e.Event})
				if e.Event == store.EventAccepted && !strings.Contains(e.Note, "replaced in Q3") {
					t.Errorf("accepted event note = %q, want the reason given", e.Note)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("history of %s:\n got %v\nwant %v", tc.f.Rule, got, tc.want)
			}
		}
		if _, err := s.FindingHistory(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("history of unknown finding: %v, want ErrNotFound", err)
		}
	})

	t.Run("scans newest first", func(t *testing.T) {
		scans, err := s.Scans(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sc := range scans {
			got = append(got, sc.ID+":"+strconv.FormatBool(sc.Complete))
		}
		if want := []string{"s5:true", "s4:true", "s3:false", "s2:true", "s1:true"}; !slices.Equal(got, want) {
			t.Errorf("Scans = %v, want %v", got, want)
		}
		if s3 := scans[2]; !slices.Equal(s3.Errors, []string{"nmap: interrupted"}) || !s3.FinishedAt.Equal(at(49)) ||
			!slices.Equal(s3.Locations, both) {
			t.Errorf("scan s3 read back as %+v", s3)
		}
		if two, _ := s.Scans(ctx, 2); len(two) != 2 || two[0].ID != "s5" {
			t.Errorf("Scans(2) = %v", two)
		}
	})
}

// An agent may upload a scan it buffered after a newer one: the older scan
// must not overrule what the newer one saw.
func testFinishScanOutOfOrder(t *testing.T, h *Harness) {
	s := h.fresh(t)
	dt := []string{"downtown"}
	finishT(t, s, observe.Scan{ID: "old", StartedAt: at(0), FinishedAt: at(0), Locations: dt, Complete: true}, rdp, telnet)
	finishT(t, s, observe.Scan{ID: "new", StartedAt: at(10), FinishedAt: at(10), Locations: dt, Complete: true}, rdp)
	// A late scan from between the two: saw telnet (resolved by "new"), not rdp (seen by "new").
	cur, res := finishT(t, s, observe.Scan{ID: "late", StartedAt: at(5), FinishedAt: at(5), Locations: dt, Complete: true}, telnet)

	if len(res) != 0 {
		t.Errorf("late scan resolved %v; a newer scan saw them", ids(res))
	}
	if cur[0].Status != observe.StatusResolved {
		t.Errorf("telnet status after late sighting = %s, want resolved (resolved by the newer scan)", cur[0].Status)
	}
	got := byID(t, s)
	if f := got[rdp.ID]; f.Status != "open" || !f.LastSeen.Equal(at(10)) {
		t.Errorf("rdp = %s last %v, want open last %v", f.Status, f.LastSeen, at(10))
	}
	if f := got[telnet.ID]; f.Status != "resolved" || !f.LastSeen.Equal(at(5)) || !f.FirstSeen.Equal(at(0)) {
		t.Errorf("telnet = %s first %v last %v, want resolved first %v last %v", f.Status, f.FirstSeen, f.LastSeen, at(0), at(5))
	}
}

func testScanMisuseIsRefused(t *testing.T, h *Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	scan := observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(1), Locations: []string{"downtown"}, Complete: true}
	finishT(t, s, scan, rdp)

	if _, _, err := s.FinishScan(ctx, scan, []observe.Finding{rdp}); !errors.Is(err, store.ErrScanFinished) {
		t.Errorf("FinishScan twice: %v, want ErrScanFinished", err)
	}
	if err := s.BeginScan(ctx, scan); !errors.Is(err, store.ErrScanFinished) {
		t.Errorf("BeginScan on a finished scan: %v, want ErrScanFinished", err)
	}
	obs := []observe.Observation{{Kind: observe.KindHost, Location: "downtown", Host: "10.10.1.1", At: at(0)}}
	if err := s.AddObservations(ctx, "s1", obs); !errors.Is(err, store.ErrScanFinished) {
		t.Errorf("AddObservations to a finished scan: %v, want ErrScanFinished", err)
	}
	if err := s.AddObservations(ctx, "nope", obs); !errors.Is(err, store.ErrUnknownScan) {
		t.Errorf("AddObservations to an unknown scan: %v, want ErrUnknownScan", err)
	}
	if _, err := s.Observations(ctx, "nope"); !errors.Is(err, store.ErrUnknownScan) {
		t.Errorf("Observations of an unknown scan: %v, want ErrUnknownScan", err)
	}
	if _, err := s.DecideFinding(ctx, "nope", observe.Decision{Status: observe.StatusAccepted, By: "a", Reason: "b", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecideFinding on an unknown finding: %v, want ErrNotFound", err)
	}
	for name, d := range map[string]observe.Decision{
		"unknown status": {Status: "maybe", By: "a", Reason: "b"},
		"no person":      {Status: observe.StatusAccepted, Reason: "b", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
		"no reason":      {Status: observe.StatusFalsePositive, By: "a", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
		"no expiry":      {Status: observe.StatusAccepted, By: "a", Reason: "b"},
		"expiry past":    {Status: observe.StatusAccepted, By: "a", Reason: "b", Expires: at(0)},
	} {
		if _, err := s.DecideFinding(ctx, rdp.ID, d); err == nil || (name != "unknown status" && !errors.Is(err, store.ErrInvalidDecision)) {
			t.Errorf("DecideFinding with %s = %v, want ErrInvalidDecision", name, err)
		}
	}
	if h, _ := s.FindingHistory(ctx, rdp.ID); len(h) != 1 {
		t.Errorf("refused calls wrote history: %v", h)
	}
}

// FinishScan without BeginScan still records the scan, and a finding given
// without an id gets the stable one.
func testFinishScanWithoutBeginAndWithoutIDs(t *testing.T, h *Harness) {
	s := h.fresh(t)
	f := rdp
	f.ID = ""
	cur, _, err := s.FinishScan(context.Background(), observe.Scan{ID: "ci-1", FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true},
		[]observe.Finding{f, f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cur) != 1 || cur[0].ID != rdp.ID {
		t.Fatalf("current = %v, want one finding with id %s", ids(cur), rdp.ID)
	}
	scans, _ := s.Scans(context.Background(), 0)
	if len(scans) != 1 || !scans[0].StartedAt.Equal(at(0)) || !scans[0].FinishedAt.Equal(at(0)) {
		t.Errorf("scans = %+v", scans)
	}
}

func testFindingsFilter(t *testing.T, h *Harness) {
	s := h.fresh(t)
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown", "uptown"}, Complete: true},
		rdp, telnet, ftp, tls10)
	finishT(t, s, observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(1), Locations: []string{"downtown"}, Complete: true},
		rdp, tls10) // resolves telnet

	tests := []struct {
		name   string
		filter store.FindingFilter
		want   []observe.Finding // in order
		errSub string
	}{
		{name: "all, highest severity first", want: []observe.Finding{ftp, rdp, telnet, tls10}},
		{name: "one location", filter: store.FindingFilter{Locations: []string{"downtown"}}, want: []observe.Finding{rdp, telnet, tls10}},
		{name: "open only", filter: store.FindingFilter{Statuses: []observe.Status{"open"}}, want: []observe.Finding{ftp, rdp, tls10}},
		{name: "resolved or accepted", filter: store.FindingFilter{Statuses: []observe.Status{"resolved", "accepted"}}, want: []observe.Finding{telnet}},
		{name: "at least high", filter: store.FindingFilter{MinSeverity: observe.High}, want: []observe.Finding{ftp, rdp}},
		{name: "category", filter: store.FindingFilter{Categories: []observe.Category{"weak-tls", "plaintext-protocol"}}, want: []observe.Finding{telnet, tls10}},
		{name: "combined", filter: store.FindingFilter{Locations: []string{"downtown"}, Statuses: []observe.Status{"open"}, MinSeverity: observe.Medium}, want: []observe.Finding{rdp}},
		{name: "limit", filter: store.FindingFilter{Limit: 2}, want: []observe.Finding{ftp, rdp}},
		{name: "no match", filter: store.FindingFilter{Locations: []string{"nowhere"}}},
		{name: "bad severity", filter: store.FindingFilter{MinSeverity: "urgent"}, errSub: `unknown severity "urgent"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Findings(context.Background(), tt.filter)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("error = %v, want %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var gotRules, wantRules []string
			for _, f := range got {
				gotRules = append(gotRules, f.Rule)
			}
			for _, f := range tt.want {
				wantRules = append(wantRules, f.Rule)
			}
			if !slices.Equal(gotRules, wantRules) {
				t.Errorf("got %v, want %v", gotRules, wantRules)
			}
		})
	}

	t.Run("content round-trips", func(t *testing.T) {
		got, _ := s.Findings(context.Background(), store.FindingFilter{Locations: []string{"uptown"}})
		want := ftp
		want.Status, want.FirstSeen, want.LastSeen = observe.StatusOpen, at(0), at(0)
		want.Evidence = map[string]any{"service": "x", "port": int64(3389)}
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Errorf("got %#v\nwant %#v", got, want)
		}
	})
}

func testObservationsRoundTrip(t *testing.T, h *Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	if err := s.BeginScan(ctx, observe.Scan{ID: "s1", StartedAt: at(0), Locations: []string{"downtown"}}); err != nil {
		t.Fatal(err)
	}
	first := []observe.Observation{
		{Kind: observe.KindService, Location: "downtown", Segment: "clinical", SegmentRole: "clinical", Vantage: "guest",
			VantageRole: "guest", InternetFacing: true, Host: "10.10.2.5", Port: 3389, Proto: "tcp", Source: "nmap",
			At: at(0).Add(17 * time.Nanosecond), Attrs: map[string]any{
				"service": "ms-wbt-server", "port": 3389, "ratio": 0.5, "tls": false,
				"versions": []any{"1.0", "1.2"}, "cert": map[string]any{"bits": 2048, "cn": "dc1"}, "nothing": nil,
			}},
		{Kind: observe.KindHost, Location: "downtown", Host: "10.10.2.6", Source: "nmap", At: at(0)},
	}
	second := []observe.Observation{
		{Kind: observe.KindCheck, Location: "downtown", Host: "10.10.2.5", Port: 21, Proto: "tcp", Source: "nuclei", At: at(1),
			Attrs: map[string]any{"template": "ftp-anonymous-login"}},
	}
	if err := s.AddObservations(ctx, "s1", first); err != nil {
		t.Fatal(err)
	}
	if err := s.AddObservations(ctx, "s1", second); err != nil {
		t.Fatal(err)
	}
	got, err := s.Observations(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(first), second...)
	want[0].Attrs = map[string]any{ // JSON round trip: whole numbers come back int64, lists []any
		"service": "ms-wbt-server", "port": int64(3389), "ratio": 0.5, "tls": false,
		"versions": []any{"1.0", "1.2"}, "cert": map[string]any{"bits": int64(2048), "cn": "dc1"}, "nothing": nil,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d observations, want %d", len(got), len(want))
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) {
			t.Errorf("observation %d at %v, want %v", i, got[i].At, want[i].At)
		}
		got[i].At = want[i].At
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("observation %d:\n got %#v\nwant %#v", i, got[i], want[i])
		}
	}

	if err := s.BeginScan(ctx, observe.Scan{ID: "empty", StartedAt: at(2)}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Observations(ctx, "empty"); err != nil || len(got) != 0 {
		t.Errorf("observations of a scan without any = %v, %v", got, err)
	}
}

// A bad observation in a batch stores none of the batch.
func testAddObservationsIsAllOrNothing(t *testing.T, h *Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	if err := s.BeginScan(ctx, observe.Scan{ID: "s1", StartedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	obs := make([]observe.Observation, 1200) // more than one INSERT batch
	for i := range obs {
		obs[i] = observe.Observation{Kind: observe.KindHost, Location: "downtown", Host: "10.0.0.1", At: at(0)}
	}
	obs[1100].Attrs = map[string]any{"bad": make(chan int)} // cannot be JSON
	if err := s.AddObservations(ctx, "s1", obs); err == nil || !strings.Contains(err.Error(), "observation 1100") {
		t.Fatalf("AddObservations with an unencodable attr: %v", err)
	}
	if got, _ := s.Observations(ctx, "s1"); len(got) != 0 {
		t.Errorf("%d observations stored after a failed batch, want 0", len(got))
	}
}

// A FinishScan that fails or is cancelled leaves the previous state, and the
// scan can be finished again.
func testFailedFinishScanChangesNothing(t *testing.T, h *Harness) {
	errHook := errors.New("disk on fire")
	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		hook    func(cancel context.CancelFunc) func(context.Context) error
		wantErr error
	}{
		{
			name: "cancelled before the call",
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, c := context.WithCancel(context.Background())
				c()
				return ctx, c
			},
			wantErr: context.Canceled,
		},
		{
			name: "cancelled just before commit",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			hook: func(cancel context.CancelFunc) func(context.Context) error {
				return func(context.Context) error { cancel(); return nil }
			},
			wantErr: context.Canceled,
		},
		{
			name: "cancelled mid-transaction",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			hook: func(cancel context.CancelFunc) func(context.Context) error {
				return func(ctx context.Context) error {
					cancel()
					<-ctx.Done()
					return ctx.Err()
				}
			},
			wantErr: context.Canceled,
		},
		{
			name: "error inside the transaction",
			ctx:  func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			hook: func(context.CancelFunc) func(context.Context) error {
				return func(context.Context) error { return errHook }
			},
			wantErr: errHook,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := h.New(t)
			s := h.open(t, path)
			dt := []string{"downtown"}
			finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: dt, Complete: true}, rdp, telnet)
			before := byID(t, s)
			histBefore, _ := s.FindingHistory(context.Background(), rdp.ID)

			scan2 := observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(2), Locations: dt, Complete: true}
			if err := s.BeginScan(context.Background(), scan2); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			if tt.hook != nil {
				s.SetBeforeCommit(tt.hook(cancel))
			}
			// Would resolve rdp, add tls10 and see telnet.
			_, _, err := s.FinishScan(ctx, scan2, []observe.Finding{telnet, tls10})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FinishScan error = %v, want %v", err, tt.wantErr)
			}
			s.SetBeforeCommit(nil)
			s.Close()

			s = h.open(t, path)
			if after := byID(t, s); !reflect.DeepEqual(after, before) {
				t.Errorf("findings changed by a failed FinishScan:\nbefore %v\nafter  %v", before, after)
			}
			if h, _ := s.FindingHistory(context.Background(), rdp.ID); !reflect.DeepEqual(h, histBefore) {
				t.Errorf("history changed: %v", h)
			}
			scans, _ := s.Scans(context.Background(), 0)
			if len(scans) != 2 || !scans[0].FinishedAt.IsZero() {
				t.Errorf("scan s2 after a failed finish: %+v, want it still running", scans[0])
			}
			if _, resolved, err := s.FinishScan(context.Background(), scan2, []observe.Finding{telnet, tls10}); err != nil || len(resolved) != 1 {
				t.Errorf("retrying FinishScan: resolved %v, %v; want rdp resolved", ids(resolved), err)
			}
		})
	}
}

// A caller that passes only the id and outcome to FinishScan keeps what
// BeginScan recorded, including the locations that decide what is resolved.
func testFinishScanKeepsWhatBeginScanRecorded(t *testing.T, h *Harness) {
	s := h.fresh(t)
	ctx := context.Background()
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp)
	if err := s.BeginScan(ctx, observe.Scan{ID: "s2", StartedAt: at(1), Version: "1.2.3", Locations: []string{"downtown"}}); err != nil {
		t.Fatal(err)
	}
	_, resolved, err := s.FinishScan(ctx, observe.Scan{ID: "s2", FinishedAt: at(2), Complete: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resolved) != 1 || resolved[0].ID != rdp.ID {
		t.Errorf("resolved %v, want rdp: the scan covered downtown", ids(resolved))
	}
	scans, _ := s.Scans(ctx, 1)
	if got := scans[0]; got.Version != "1.2.3" || !got.StartedAt.Equal(at(1)) || !slices.Equal(got.Locations, []string{"downtown"}) {
		t.Errorf("scan s2 = %+v, want version, start and locations from BeginScan", got)
	}
}

// A finding seen from one vantage point is resolved only by a complete
// scan from that vantage point: another sensor could not have seen it.
func testResolveIsScopedToVantage(t *testing.T, h *Harness) {
	s := h.fresh(t)
	dt := []string{"downtown"}
	fromGuest := finding("net.segmentation-violation", "flat-network", observe.High, "downtown", "guest->servers")
	fromGuest.Vantage = "guest"
	anywhere := finding("svc.telnet", "plaintext-protocol", observe.High, "downtown", "10.0.0.5:23")
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: dt, Complete: true,
		Vantages: map[string][]string{"downtown": {"guest"}}}, fromGuest, anywhere)

	// A scan from the servers segment sees neither: it resolves only the
	// finding that does not depend on where it was seen from.
	_, res := finishT(t, s, observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(1), Locations: dt, Complete: true,
		Vantages: map[string][]string{"downtown": {"servers"}}})
	if len(res) != 1 || res[0].ID != anywhere.ID {
		t.Fatalf("scan from servers resolved %v, want only %s", ids(res), anywhere.ID)
	}
	if f := byID(t, s)[fromGuest.ID]; f.Status != observe.StatusOpen || f.Vantage != "guest" {
		t.Errorf("finding seen from guest = %s (vantage %q), want open, from guest", f.Status, f.Vantage)
	}
	// A scan from guest that no longer sees it resolves it.
	_, res = finishT(t, s, observe.Scan{ID: "s3", StartedAt: at(2), FinishedAt: at(2), Locations: dt, Complete: true,
		Vantages: map[string][]string{"downtown": {"guest", "servers"}}})
	if len(res) != 1 || res[0].ID != fromGuest.ID {
		t.Fatalf("scan from guest resolved %v, want %s", ids(res), fromGuest.ID)
	}
	scans, err := s.Scans(context.Background(), 1)
	if err != nil || len(scans) != 1 || len(scans[0].Vantages["downtown"]) != 2 {
		t.Errorf("Scans()[0].Vantages = %v (%v), want the two vantages of s3", scans, err)
	}
}

// Findings about accounts and packages belong to their source, not to a
// location: only a scan that read that source in full resolves them, and
// it does so even when the network part of the scan failed.
func testResolveIsScopedToSource(t *testing.T, h *Harness) {
	s := h.fresh(t)
	emr := finding("id.no-mfa", "missing-mfa", observe.Medium, "", "emr:jane")
	emr.Vantage = "csv:emr"
	ad := finding("id.stale-account", "stale-account", observe.Medium, "", "ad:bob")
	ad.Vantage = "ldap:ad"
	finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true,
		Sources: []string{"csv:emr", "ldap:ad"}}, emr, ad, rdp)

	// A complete network scan that read no source resolves neither.
	_, res := finishT(t, s, observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(1), Locations: []string{"downtown"}, Complete: true}, rdp)
	if len(res) != 0 {
		t.Fatalf("network-only scan resolved %v", ids(res))
	}
	// An incomplete scan that read the EMR export in full (but not the
	// directory, which failed) resolves the EMR finding only.
	_, res = finishT(t, s, observe.Scan{ID: "s3", StartedAt: at(2), FinishedAt: at(2), Locations: []string{"downtown"},
		Errors: []string{"location downtown: nmap failed"}, Sources: []string{"csv:emr"},
		SourceErrors: []string{"ldap:ad: bind refused"}}, rdp)
	if len(res) != 1 || res[0].ID != emr.ID {
		t.Fatalf("scan reading csv:emr resolved %v, want only %s", ids(res), emr.ID)
	}
	all := byID(t, s)
	if all[ad.ID].Status != observe.StatusOpen || all[rdp.ID].Status != observe.StatusOpen {
		t.Errorf("ad finding %s, rdp finding %s: want both open", all[ad.ID].Status, all[rdp.ID].Status)
	}
	scans, err := s.Scans(context.Background(), 1)
	if err != nil || len(scans) != 1 || !slices.Equal(scans[0].Sources, []string{"csv:emr"}) ||
		!slices.Equal(scans[0].SourceErrors, []string{"ldap:ad: bind refused"}) {
		t.Errorf("Scans()[0] = %+v (%v), want sources and source errors of s3", scans, err)
	}
}

type state struct {
	status      observe.Status
	first, last time.Time
}

func ids(fs []observe.Finding) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.ID
	}
	slices.Sort(out)
	return out
}

func sortedIDs(fs ...observe.Finding) []string { return ids(fs) }

// Opening migrates once: reopening finds the schema current and the data
// kept.
func testMigratesOnce(t *testing.T, h *Harness) {
	ctx := context.Background()
	loc := h.New(t)
	for i := range 3 {
		s, err := h.Open(ctx, loc, Options{})
		if err != nil {
			t.Fatalf("open #%d: %v", i+1, err)
		}
		var versions, n int
		if err := s.SQL().QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &versions); err != nil {
			t.Fatal(err)
		}
		if n != sqlstore.LatestVersion || versions != sqlstore.LatestVersion {
			t.Errorf("open #%d: schema_migrations has %d rows up to v%d, want %d up to v%d", i+1, n, versions, sqlstore.LatestVersion, sqlstore.LatestVersion)
		}
		if i == 0 {
			finishT(t, s, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp)
		}
		if got := len(byID(t, s)); got != 1 {
			t.Errorf("open #%d: %d findings, want the 1 stored before", i+1, got)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close #%d: %v", i+1, err)
		}
	}
}

// A reader beside the writer sees what the writer commits and cannot write.
func testReadOnlyBesideWriter(t *testing.T, h *Harness) {
	ctx := context.Background()
	loc := h.New(t)
	w := h.open(t, loc)
	finishT(t, w, observe.Scan{ID: "s1", StartedAt: at(0), FinishedAt: at(0), Locations: []string{"downtown"}, Complete: true}, rdp)

	r := h.open(t, loc, ReadOnly())
	got, err := r.Findings(ctx, store.FindingFilter{})
	if err != nil || len(got) != 1 {
		t.Fatalf("read-only Findings = %v, %v", ids(got), err)
	}
	if _, err := r.DecideFinding(ctx, rdp.ID, observe.Decision{Status: observe.StatusAccepted, By: "a", Reason: "b", Expires: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
		t.Error("read-only store accepted a write")
	}
	finishT(t, w, observe.Scan{ID: "s2", StartedAt: at(1), FinishedAt: at(1), Locations: []string{"downtown"}, Complete: true}, telnet)
	if got, _ := r.Findings(ctx, store.FindingFilter{Statuses: []observe.Status{"open"}}); len(got) != 1 || got[0].ID != telnet.ID {
		t.Errorf("reader sees open %v after the writer's second scan, want telnet only", ids(got))
	}
}
