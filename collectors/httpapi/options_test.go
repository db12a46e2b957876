package httpapi

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOptionsNewClient(t *testing.T) {
	hc := &http.Client{}
	at := time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC)
	o := Options{HTTPClient: hc, Now: func() time.Time { return at }, MaxPages: 7, MaxRetries: 2}
	c, err := o.NewClient("okta:main", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Source != "okta:main" || c.HTTP != hc || c.MaxPages != 7 || c.MaxRetries != 2 || c.Logger == nil {
		t.Errorf("client = %+v", c)
	}
	if c.Now != nil {
		t.Error("Options.Now became the client's clock: rate-limit waits would run on the fixed test time")
	}
	if !o.Time().Equal(at) {
		t.Errorf("Time = %v, want %v", o.Time(), at)
	}
	if d := time.Since(Options{}.Time()); d < 0 || d > time.Minute {
		t.Errorf("zero Options' Time is %v from now", d)
	}

	c, err = Options{}.NewClient("okta:main", "")
	if err != nil || c.HTTP == nil || c.Logger == nil {
		t.Fatalf("zero Options: %+v, %v", c, err)
	}

	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Options{}.NewClient("okta:main", bad)
	if err == nil || !strings.HasPrefix(err.Error(), "okta:main: ca_file: ") {
		t.Errorf("err = %v, want one about ca_file naming the source", err)
	}
}
