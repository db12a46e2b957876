package telemetry

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/sqlite"
)

func openStore(t testing.TB) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "vigil.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestStoreSinkDayRecords posts metrics on two days through the handler
// into a real SQLite store and reads them back.
func TestStoreSinkDayRecords(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	clock := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	sink := StoreSink{Store: st, Now: func() time.Time { return clock }}
	h := IngestHandler(StaticToken(goodToken), sink, IngestOptions{Locations: []string{"downtown"}})
	ts := httptest.NewServer(h)
	defer ts.Close()

	send := func(body string) int {
		t.Helper()
		return post(t, ts.URL, []byte(body), map[string]string{"Authorization": "Token " + goodToken}).status
	}
	if got := send("net_response,host=fd-pc,location=downtown,server=10.10.2.5,port=3389,protocol=tcp,result=success response_time=0.002\n"); got != 204 {
		t.Fatalf("first post: %d", got)
	}
	if got := send("cpu,host=fd-pc usage_idle=97\ncpu,host=fd-pc usage_idle=96\n"); got != 204 {
		t.Fatalf("second post: %d", got)
	}
	// A bad batch stores nothing, even its good first line.
	if got := send("cpu,host=fd-pc usage_idle=95\ncpu,host=fd-pc usage_idle=\n"); got != 400 {
		t.Fatalf("bad post: %d", got)
	}
	clock = clock.Add(20 * time.Hour) // 05:00 the next day
	if got := send("cpu,host=fd-pc usage_idle=90\n"); got != 204 {
		t.Fatalf("next day: %d", got)
	}

	day1, err := st.Observations(ctx, "telegraf-20250301")
	if err != nil {
		t.Fatal(err)
	}
	if len(day1) != 3 {
		t.Fatalf("day 1 holds %d observations, want 3", len(day1))
	}
	if o := day1[0]; o.Kind != observe.KindMetric || o.Source != "telegraf-agent:fd-pc" || o.Location != "downtown" ||
		o.Host != "10.10.2.5" || o.Port != 3389 || o.Attrs["result"] != "success" {
		t.Errorf("stored net_response = %+v", o)
	}
	day2, err := st.Observations(ctx, "telegraf-20250302")
	if err != nil || len(day2) != 1 {
		t.Fatalf("day 2: %d observations, %v", len(day2), err)
	}

	scans, err := st.Scans(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) != 2 {
		t.Fatalf("want 2 day records, got %+v", scans)
	}
	for _, s := range scans {
		if s.Version != DayScanVersion || !s.FinishedAt.IsZero() || s.StartedAt.Hour() != 0 || s.StartedAt.Minute() != 0 {
			t.Errorf("day record %+v: want version telegraf, begun at midnight UTC, never finished", s)
		}
	}
}

type failingStore struct{ begun, added int }

func (f *failingStore) BeginScan(context.Context, observe.Scan) error { f.begun++; return nil }
func (f *failingStore) AddObservations(context.Context, string, []observe.Observation) error {
	f.added++
	return store.ErrScanFinished
}

func TestStoreSinkFinishedRecordIsAnError(t *testing.T) {
	f := &failingStore{}
	err := StoreSink{Store: f}.AddMetrics(context.Background(), []observe.Observation{{Kind: observe.KindMetric}})
	if !errors.Is(err, store.ErrScanFinished) || f.begun != 0 {
		t.Fatalf("err %v, begun %d: a finished day record must not be begun again", err, f.begun)
	}
}

func TestDayScanID(t *testing.T) {
	// 23:30 in New York on 1 March is already 2 March in UTC.
	ny := time.FixedZone("EST", -5*3600)
	if got := DayScanID(time.Date(2025, 3, 1, 23, 30, 0, 0, ny)); got != "telegraf-20250302" {
		t.Errorf("DayScanID = %s", got)
	}
}
