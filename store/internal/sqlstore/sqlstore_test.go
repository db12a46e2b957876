package sqlstore

import (
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/store"
)

func TestSeenAt(t *testing.T) {
	h := func(n int) time.Time { return time.Date(2025, 1, 1, n, 0, 0, 0, time.UTC) }
	tests := []struct {
		name       string
		prev       *lifecycle
		t          time.Time
		want       lifecycle
		wantEvent  store.Event
		wantLatest bool
	}{
		{"new", nil, h(5), lifecycle{status: "open", firstSeen: h(5), lastSeen: h(5)}, store.EventOpened, true},
		{"open seen again", &lifecycle{status: "open", firstSeen: h(1), lastSeen: h(2)}, h(5),
			lifecycle{status: "open", firstSeen: h(1), lastSeen: h(5)}, store.EventSeen, true},
		{"resolved comes back", &lifecycle{status: "resolved", firstSeen: h(1), lastSeen: h(2), resolvedAt: h(3)}, h(5),
			lifecycle{status: "open", firstSeen: h(1), lastSeen: h(5)}, store.EventReopened, true},
		{"accepted stays accepted", &lifecycle{status: "accepted", firstSeen: h(1), lastSeen: h(2)}, h(5),
			lifecycle{status: "accepted", firstSeen: h(1), lastSeen: h(5)}, store.EventSeen, true},
		{"false positive stays", &lifecycle{status: "false-positive", firstSeen: h(1), lastSeen: h(2)}, h(5),
			lifecycle{status: "false-positive", firstSeen: h(1), lastSeen: h(5)}, store.EventSeen, true},
		{"older scan: last_seen kept, first_seen moves back", &lifecycle{status: "open", firstSeen: h(3), lastSeen: h(6)}, h(1),
			lifecycle{status: "open", firstSeen: h(1), lastSeen: h(6)}, store.EventSeen, false},
		{"older scan does not reopen what a newer one resolved", &lifecycle{status: "resolved", firstSeen: h(1), lastSeen: h(2), resolvedAt: h(6)}, h(4),
			lifecycle{status: "resolved", firstSeen: h(1), lastSeen: h(4), resolvedAt: h(6)}, store.EventSeen, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ev, latest := seenAt(tt.prev, tt.t)
			if !reflect.DeepEqual(got, tt.want) || ev != tt.wantEvent || latest != tt.wantLatest {
				t.Errorf("seenAt = %+v, %s, %v; want %+v, %s, %v", got, ev, latest, tt.want, tt.wantEvent, tt.wantLatest)
			}
		})
	}
}

// Stored timestamps must sort as strings in time order, or "last_seen < t"
// in SQL would resolve the wrong findings.
func TestTimeFormatSortsAsStrings(t *testing.T) {
	base := time.Date(2025, 3, 1, 2, 0, 5, 0, time.UTC)
	times := []time.Time{
		base, base.Add(100 * time.Millisecond), base.Add(120 * time.Millisecond), base.Add(1), base.Add(time.Second),
		base.In(time.FixedZone("PST", -8*3600)).Add(-time.Hour), time.Date(2024, 12, 31, 23, 59, 59, 999999999, time.UTC),
	}
	strs := make([]string, len(times))
	for i, tm := range times {
		strs[i] = formatTime(tm)
		back, err := parseTime(strs[i])
		if err != nil || !back.Equal(tm) {
			t.Errorf("parseTime(formatTime(%v)) = %v, %v", tm, back, err)
		}
	}
	sort.Strings(strs)
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	for i := range times {
		if strs[i] != formatTime(times[i]) {
			t.Errorf("string order %v differs from time order at %d", strs, i)
		}
	}
}

func TestDecodeMapNumbers(t *testing.T) {
	got, err := decodeMap(`{"a":1,"b":1.5,"c":[2,"x"],"d":{"e":-3},"f":1e3,"g":9007199254740993}`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": int64(1), "b": 1.5, "c": []any{int64(2), "x"}, "d": map[string]any{"e": int64(-3)},
		"f": 1000.0, "g": int64(9007199254740993)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decodeMap = %#v, want %#v", got, want)
	}
	if m, err := decodeMap("null"); m != nil || err != nil {
		t.Errorf("decodeMap(null) = %v, %v", m, err)
	}
	if _, err := decodeMap(`[1]`); err == nil {
		t.Error("decodeMap accepted an array")
	}
}

func TestQueryPlaceholders(t *testing.T) {
	build := func(p Placeholders) *query {
		q := (&DB{placeholders: p}).query()
		q.WriteString("x IN (" + listArgs(q, []observe.Status{"open", "resolved"}) + ") AND y = " + q.arg(3) + " VALUES ")
		q.row("a", 1)
		return q
	}
	for _, tt := range []struct {
		p    Placeholders
		want string
	}{
		{Dollar, "x IN ($1, $2) AND y = $3 VALUES ($4, $5)"},
		{Question, "x IN (?, ?) AND y = ? VALUES (?, ?)"},
	} {
		q := build(tt.p)
		if q.String() != tt.want || !reflect.DeepEqual(q.args, []any{"open", "resolved", 3, "a", 1}) {
			t.Errorf("query = %q %v, want %q", q.String(), q.args, tt.want)
		}
	}
}
