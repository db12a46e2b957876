package store

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		in         string
		driver     string
		target     string
		wantErrSub string
	}{
		{in: "sqlite:///var/lib/vigil/vigil.db", driver: "sqlite", target: "/var/lib/vigil/vigil.db"},
		{in: "SQLITE:///var/lib/vigil/vigil.db", driver: "sqlite", target: "/var/lib/vigil/vigil.db"},
		{in: "sqlite://vigil-data/vigil.db", driver: "sqlite", target: "vigil-data/vigil.db"},
		{in: "sqlite:vigil-data/vigil.db", driver: "sqlite", target: "vigil-data/vigil.db"},
		{in: "sqlite:///srv/my%20data/vigil.db", driver: "sqlite", target: "/srv/my data/vigil.db"},
		{in: "sqlite:///srv/odd%3Fname.db", driver: "sqlite", target: "/srv/odd?name.db"},
		{in: "./vigil-data/vigil.db", driver: "sqlite", target: "./vigil-data/vigil.db"},
		{in: "/abs/vigil.db", driver: "sqlite", target: "/abs/vigil.db"},
		{in: "postgres://vigil@db.example/vigil?sslmode=require", driver: "postgres", target: "postgres://vigil@db.example/vigil?sslmode=require"},
		{in: "postgresql://db/vigil", driver: "postgres", target: "postgresql://db/vigil"},
		{in: "", wantErrSub: "empty"},
		{in: "sqlite://", wantErrSub: "no file path"},
		{in: "sqlite:///x.db?mode=ro", wantErrSub: "query parameters"},
		{in: "sqlite:///bad%zz.db", wantErrSub: "invalid URL escape"},
		{in: "mysql://db/vigil", wantErrSub: `unsupported scheme "mysql"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			driver, target, err := ParseURL(tt.in)
			if tt.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
					t.Fatalf("ParseURL(%q) error = %v, want one containing %q", tt.in, err, tt.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.in, err)
			}
			if driver != tt.driver || target != tt.target {
				t.Errorf("ParseURL(%q) = %q, %q; want %q, %q", tt.in, driver, target, tt.driver, tt.target)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{"sqlite:///a.db", "sqlite:a", "postgres://x", "x.db", "sqlite://%", "a://b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		driver, target, err := ParseURL(in)
		if err != nil {
			return
		}
		switch driver {
		case DriverSQLite:
			if target == "" || strings.ContainsRune(target, 0) {
				t.Fatalf("ParseURL(%q) = sqlite %q: empty path or NUL", in, target)
			}
		case DriverPostgres:
			if target != in {
				t.Fatalf("ParseURL(%q) changed a postgres URL to %q", in, target)
			}
		default:
			t.Fatalf("ParseURL(%q) returned unknown driver %q", in, driver)
		}
	})
}
