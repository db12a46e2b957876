// Package attest records what no scan can see: that the risk analysis was
// reviewed, the workforce trained, the restore drill run, the BAAs signed.
// An attestation names who did what and when, optionally with a document
// (kept content-addressed, so a later change of the file cannot pass for the
// original), and counts until it expires; reminders come before that.
package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/controls"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
)

// Record is one attestation as recorded.
type Record = observe.Attestation

// Expiry is when the record stops counting: its own expiry, else its date
// plus the kind's valid_days from the catalog.
func Expiry(r Record, cat *rules.Catalog) time.Time {
	if !r.ExpiresAt.IsZero() {
		return r.ExpiresAt
	}
	if k, ok := cat.AttestationKind(r.Kind); ok && k.ValidDays > 0 {
		return r.At.AddDate(0, 0, k.ValidDays)
	}
	return time.Time{}
}

// Validate checks a record before it is stored: a known kind, a date not in
// the future, an expiry after the date, someone responsible.
func Validate(r Record, cat *rules.Catalog, now time.Time) error {
	var errs []error
	if _, ok := cat.AttestationKind(r.Kind); !ok {
		var kinds []string
		for _, k := range cat.AttestationKinds {
			kinds = append(kinds, k.Kind)
		}
		errs = append(errs, fmt.Errorf("kind %q is not an attestation kind (one of: %s)", r.Kind, strings.Join(kinds, ", ")))
	}
	switch {
	case r.At.IsZero():
		errs = append(errs, errors.New("date is required: when it was done"))
	case r.At.After(now.Add(24 * time.Hour)):
		errs = append(errs, fmt.Errorf("date %s is in the future: record what was done, when it was done", r.At.Format(time.DateOnly)))
	}
	if !r.ExpiresAt.IsZero() && !r.ExpiresAt.After(r.At) {
		errs = append(errs, fmt.Errorf("expiry %s is not after the date %s", r.ExpiresAt.Format(time.DateOnly), r.At.Format(time.DateOnly)))
	}
	if strings.TrimSpace(r.By) == "" && strings.TrimSpace(r.Owner) == "" {
		errs = append(errs, errors.New("by or owner is required: a person answers for every attestation"))
	}
	return errors.Join(errs...)
}

// Source turns records into what control status reads: failing results
// do not count, and each record carries its computed expiry.
func Source(records []Record, cat *rules.Catalog) controls.AttestationList {
	var out controls.AttestationList
	for _, r := range records {
		if !r.Counts() {
			continue
		}
		a := r
		a.ExpiresAt = Expiry(r, cat)
		out = append(out, a)
	}
	return out
}

// Reminder is an attestation that expires soon, has expired, or was never
// recorded although a control of the location needs it; or (Person set) a
// person whose new-hire training deadline is near or past (NewHireDue).
type Reminder struct {
	Kind     string `json:"kind"`
	Title    string `json:"title"`
	Location string `json:"location,omitempty"`
	// Expires is when the record stops counting; for a person, their
	// training deadline.
	Expires time.Time `json:"expires,omitzero"`
	// Days until expiry: negative once expired.
	Days  int    `json:"days"`
	State string `json:"state"` // expiring | expired | missing
	// Person is the email (else username) of the person to train; their
	// date of hire, the control that sets the deadline and the provision
	// it cites come with it.
	Person   string    `json:"person,omitempty"`
	Hired    time.Time `json:"hired,omitzero"`
	Control  string    `json:"control,omitempty"`
	Citation string    `json:"citation,omitempty"`
}

// Due lists, for the kinds asked about (every catalog kind when nil), the
// latest counting record per (kind, location) that expires within warn of
// now or has expired, and the kinds with no record at all, soonest first.
func Due(records []Record, cat *rules.Catalog, kinds []string, warn time.Duration, now time.Time) []Reminder {
	if kinds == nil {
		for _, k := range cat.AttestationKinds {
			kinds = append(kinds, k.Kind)
		}
	}
	type key struct{ kind, loc string }
	latest := map[key]Record{}
	seen := map[string]bool{}
	for _, r := range records {
		if !r.Counts() {
			continue
		}
		k := key{r.Kind, r.Location}
		if cur, ok := latest[k]; !ok || Expiry(r, cat).After(Expiry(cur, cat)) {
			latest[k] = r
		}
		seen[r.Kind] = true
	}
	var out []Reminder
	for _, kind := range kinds {
		title := kind
		if k, ok := cat.AttestationKind(kind); ok {
			title = k.Title
		}
		if !seen[kind] {
			out = append(out, Reminder{Kind: kind, Title: title, State: "missing"})
			continue
		}
		for k, r := range latest {
			if k.kind != kind {
				continue
			}
			exp := Expiry(r, cat)
			if exp.IsZero() || exp.Sub(now) > warn {
				continue
			}
			rem := Reminder{Kind: kind, Title: title, Location: k.loc, Expires: exp, Days: int(exp.Sub(now).Hours() / 24), State: "expiring"}
			if !exp.After(now) {
				rem.State = "expired"
				rem.Days = -int(now.Sub(exp).Hours() / 24)
			}
			out = append(out, rem)
		}
	}
	SortReminders(out)
	return out
}

// SortReminders orders reminders as Due returns them, so that Due's and
// NewHireDue's can be merged: expired, then missing, then expiring, each
// soonest first.
func SortReminders(out []Reminder) {
	sort.SliceStable(out, func(i, j int) bool {
		oi, oj := order(out[i]), order(out[j])
		if oi != oj {
			return oi < oj
		}
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.Before(out[j].Expires)
		}
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		if out[i].Location != out[j].Location {
			return out[i].Location < out[j].Location
		}
		return out[i].Person < out[j].Person
	})
}

func order(r Reminder) int {
	switch r.State {
	case "expired":
		return 0
	case "missing":
		return 1
	}
	return 2
}

// MaxDocumentSize bounds an attached document (a policy PDF, a sign-in
// sheet scan).
const MaxDocumentSize = 50 << 20

// Documents keeps attached documents content-addressed under a directory:
// DIR/sha256/ab/abcdef.... A document is stored once however often it is
// attached, and what is stored can be checked against its name.
type Documents struct{ Dir string }

// Put copies the document into the store and returns its sha256.
func (d Documents) Put(r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Join(d.Dir, "sha256"), 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Join(d.Dir, "sha256"), ".incoming-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxDocumentSize+1))
	if err == nil && n > MaxDocumentSize {
		err = fmt.Errorf("document larger than %d MiB", MaxDocumentSize>>20)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	dst := d.path(sum)
	if _, err := os.Stat(dst); err == nil {
		return sum, nil // already stored
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o400); err != nil {
		return "", err
	}
	return sum, os.Rename(tmp.Name(), dst)
}

// Open returns the stored document with that sha256, after checking that
// its content still hashes to its name.
func (d Documents) Open(sum string) ([]byte, error) {
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("%q is not a sha256", sum)
	}
	b, err := os.ReadFile(d.path(sum))
	if err != nil {
		return nil, err
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("document %s was altered on disk (it now hashes to %x)", sum, got)
	}
	return b, nil
}

func (d Documents) path(sum string) string { return filepath.Join(d.Dir, "sha256", sum[:2], sum) }
