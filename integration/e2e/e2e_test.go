// Package e2e drives the dashboard in a real headless Chromium (Debian's
// chromium package, through chromedp) against a `vigil serve` built from
// this tree, on 127.0.0.1, over a small synthetic organisation
// (internal/synth): first-start setup, TOTP enrollment, sign-in with a
// code, portfolio, a location's reachability matrix, accepting a finding,
// the CSV export, the other main pages, and enrolling, watching and
// revoking a site agent.
//
//	go test ./integration/e2e/                     # skips without chromium
//	VIGIL_E2E_REQUIRED=1 go test ./integration/e2e/ # fails without it
//	go test ./integration/e2e/ -update             # also saves docs/screenshots/*.png
package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/internal/synth"
)

// agent is an enrolled site agent, as the agent protocol sees it.
type agent struct {
	tenant, id string
	key        ed25519.PrivateKey
}

func enrollAgent(ctx context.Context, base, token string) (*agent, error) {
	pub, key, _ := ed25519.GenerateKey(nil)
	body, _ := json.Marshal(protocol.EnrollRequest{Token: token, PublicKey: pub, Hostname: "e2e-sensor", Version: "e2e"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("%s: %s", resp.Status, b)
	}
	var er protocol.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		return nil, err
	}
	return &agent{tenant: er.Tenant, id: er.AgentID, key: key}, nil
}

// heartbeat sends a signed heartbeat and returns the status code.
func (a *agent) heartbeat(ctx context.Context, base string, queue int) (int, error) {
	body, _ := json.Marshal(protocol.Heartbeat{Version: "e2e", Hostname: "e2e-sensor", QueueDepth: queue, QueueBytes: int64(queue) * 1000})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.PathHeartbeat, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	protocol.Sign(req, a.tenant, a.id, a.key, body, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

var update = flag.Bool("update", false, "save screenshots of the main pages to docs/screenshots/ (also VIGIL_E2E_SCREENSHOTS=1)")

// RequireEnv turns a missing chromium from a skip into a failure; CI sets it.
const RequireEnv = "VIGIL_E2E_REQUIRED"

// chromiumPath finds the browser: $VIGIL_CHROMIUM, or Debian's chromium.
func chromiumPath() (string, error) {
	if p := os.Getenv("VIGIL_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found: apt-get install chromium (or set VIGIL_CHROMIUM)")
}

func requireChromium(t *testing.T) string {
	t.Helper()
	p, err := chromiumPath()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("browser tests required (%s=1): %v", RequireEnv, err)
		}
		t.Skipf("skipping browser end-to-end test: %v", err)
	}
	return p
}

// moduleRoot is the repository root: two levels above this package.
func moduleRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(filepath.Dir(wd))
}

// vigilBinary is $VIGIL_BIN, or vigil built from this tree.
func vigilBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("VIGIL_BIN"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "vigil")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/vigil")
	cmd.Dir = moduleRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/vigil: %v\n%s", err, b)
	}
	return out
}

// browser runs steps in one tab and keeps what a failing step needs to
// be understood: a screenshot and the page's URL.
type session struct {
	t           *testing.T
	ctx         context.Context
	base        string
	artifacts   string
	screenshots string // "" unless saving
}

func (s *session) run(step string, actions ...chromedp.Action) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		var url string
		var png []byte
		fctx, fcancel := context.WithTimeout(s.ctx, 5*time.Second)
		_ = chromedp.Run(fctx, chromedp.Location(&url), chromedp.CaptureScreenshot(&png))
		fcancel()
		shot := filepath.Join(s.artifacts, "failed-"+slug(step)+".png")
		if len(png) > 0 {
			_ = os.WriteFile(shot, png, 0o644)
		}
		s.t.Fatalf("%s: %v (page %s; screenshot %s)", step, err, url, shot)
	}
	s.t.Logf("ok: %s", step)
}

func slug(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// shot saves the viewport as docs/screenshots/NAME.png when saving.
func (s *session) shot(name string) {
	s.t.Helper()
	if s.screenshots == "" {
		return
	}
	var png []byte
	s.run("screenshot "+name, chromedp.CaptureScreenshot(&png))
	if err := os.WriteFile(filepath.Join(s.screenshots, name+".png"), png, 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *session) text(sel string) string {
	s.t.Helper()
	var v string
	s.run("read "+sel, chromedp.Text(sel, &v, chromedp.ByQuery))
	return strings.TrimSpace(v)
}

func (s *session) count(sel string) int {
	s.t.Helper()
	var n int
	s.run("count "+sel, chromedp.Evaluate(fmt.Sprintf(`document.querySelectorAll(%q).length`, sel), &n))
	return n
}

func (s *session) path() string {
	s.t.Helper()
	var u string
	s.run("location", chromedp.Evaluate(`location.pathname`, &u))
	return u
}

// tid selects by data-testid, the attributes the dashboard keeps for tests.
func tid(id string) string { return fmt.Sprintf(`[data-testid=%q]`, id) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func TestDashboardInBrowser(t *testing.T) {
	chrome := requireChromium(t)
	bin := vigilBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// A small organisation: four sites, six weeks of daily scans, the
	// last two with their full observations (so a location has a matrix).
	dir := t.TempDir()
	m, err := synth.Generate(ctx, dir, synth.Options{Locations: 4, Assets: 160, Days: 42, FullScans: 2, StaffPerLocation: 4, Seed: 7})
	if err != nil {
		t.Fatalf("synthetic data: %v", err)
	}
	t.Logf("synthetic data: %d locations, %d scans, %d findings (%d open), matrix at %s", len(m.LocationIDs), m.Scans, m.Findings, m.Open, m.Matrix)

	srv, err := synth.StartServe(ctx, synth.ServeOptions{Vigil: bin, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("vigil serve did not stop cleanly: %v", err)
		}
		if t.Failed() {
			t.Logf("vigil serve log:\n%s", srv.Log())
		}
	})
	link, err := srv.SetupURL(10 * time.Second)
	if err != nil {
		t.Fatalf("%v\nvigil serve must print the first-start setup link when no dashboard user exists", err)
	}

	artifacts := filepath.Join(os.TempDir(), "vigil-e2e-artifacts")
	os.MkdirAll(artifacts, 0o755)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.WindowSize(1366, 900),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // root in CI containers: chromium refuses its sandbox
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start %s: %v", chrome, err)
	}
	s := &session{t: t, ctx: bctx, base: srv.URL, artifacts: artifacts}

	if *update || os.Getenv("VIGIL_E2E_SCREENSHOTS") == "1" {
		s.screenshots = filepath.Join(moduleRoot(t), "docs", "screenshots")
		if err := os.MkdirAll(s.screenshots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	codes := &synth.TOTP{}
	const (
		user     = "owner"
		password = "correct horse battery staple 2026"
	)

	// 1. First start: the setup link creates the owner.
	s.run("open the setup link",
		chromedp.Navigate(link),
		chromedp.WaitVisible(tid("setup-form"), chromedp.ByQuery))
	s.run("create the owner",
		chromedp.SetValue(`input[name="username"]`, user, chromedp.ByQuery),
		chromedp.SetValue(`input[name="email"]`, "owner@lumen.example", chromedp.ByQuery),
		chromedp.SetValue(`input[name="password"]`, password, chromedp.ByQuery),
		chromedp.Click(tid("setup-submit"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("login-form"), chromedp.ByQuery))
	s.shot("login")

	// 2. The owner's first sign-in must enroll an authenticator.
	signIn := func(step string) {
		s.run(step,
			chromedp.SetValue(tid("login-username"), user, chromedp.ByQuery),
			chromedp.SetValue(tid("login-password"), password, chromedp.ByQuery),
			chromedp.Click(tid("login-submit"), chromedp.ByQuery))
	}
	signIn("sign in with the password")
	s.run("the enrollment page shows a secret", chromedp.WaitVisible(tid("enroll-secret"), chromedp.ByQuery))
	var qr string
	var hasQR bool
	s.run("read the QR code", chromedp.AttributeValue(tid("enroll-qr"), "src", &qr, &hasQR, chromedp.ByQuery))
	secret := strings.ReplaceAll(s.text(tid("enroll-secret")), " ", "")
	if !strings.HasPrefix(qr, "data:image/png;base64,") {
		// Every GET of /login/enroll issues a new secret. An <img> whose
		// src html/template replaced ("#ZgotmplZ": a data: URL not typed
		// template.URL) makes the browser GET the page again as an image,
		// so the secret on the screen is already stale and no code from
		// it is accepted.
		t.Errorf("the enrollment QR code does not display: img src %q; the browser re-requests /login/enroll for it, which replaces the secret shown (type the data: URL as template.URL)", truncate(qr, 40))
		// Go on with a secret read without loading the page's images.
		var body string
		s.run("fetch a fresh secret", chromedp.Evaluate(`fetch("/login/enroll", {credentials: "same-origin"}).then(r => r.text())`, &body,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
		var ok bool
		if secret, ok = synth.EnrollSecret(body); !ok {
			t.Fatalf("no secret on a fresh enrollment page")
		}
	}
	if ok, _ := regexp.MatchString(`^[A-Z2-7]{16,}=*$`, secret); !ok {
		t.Fatalf("enrollment secret %q is not base32", secret)
	}
	code, err := codes.Code(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	s.run("confirm the authenticator with a code",
		chromedp.SetValue(tid("enroll-code"), code, chromedp.ByQuery),
		chromedp.Click(tid("enroll-submit"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("recovery-codes"), chromedp.ByQuery))
	if n := s.count(tid("recovery-codes") + " li"); n != 10 {
		t.Errorf("recovery codes shown: %d, want 10", n)
	}

	// 3. Sign out, and in again with a TOTP code (the next 30 s step: a
	// code is accepted once).
	s.run("continue, then sign out",
		chromedp.Click(tid("enroll-continue"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("logout"), chromedp.ByQuery),
		chromedp.Click(tid("logout"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("login-form"), chromedp.ByQuery))
	signIn("sign in again")
	s.run("asked for a code", chromedp.WaitVisible(tid("mfa-form"), chromedp.ByQuery))
	t.Logf("waiting for the next TOTP step")
	if code, err = codes.Code(ctx, secret); err != nil {
		t.Fatal(err)
	}
	s.run("enter the code",
		chromedp.SetValue(tid("mfa-code"), code, chromedp.ByQuery),
		chromedp.Click(tid("mfa-submit"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("portfolio-table"), chromedp.ByQuery))

	// 4. The portfolio lists every location.
	if got := s.text(tid("user")); !strings.Contains(got, user) || !strings.Contains(got, "owner") {
		t.Errorf("signed-in user shown as %q, want the owner", got)
	}
	if n := s.count(tid("portfolio-row")); n != len(m.LocationIDs) {
		t.Errorf("portfolio rows: %d, want %d locations", n, len(m.LocationIDs))
	}
	for _, id := range m.LocationIDs {
		if s.count(fmt.Sprintf(`%s[data-location=%q]`, tid("portfolio-row"), id)) != 1 {
			t.Errorf("location %s not in the portfolio", id)
		}
	}
	s.shot("portfolio")

	// 5. A location's reachability matrix: its firewall lets traffic
	// through, so some cell is reachable against the policy.
	s.run("open location "+m.Matrix,
		chromedp.Click(fmt.Sprintf(`%s[data-location=%q] a`, tid("portfolio-row"), m.Matrix), chromedp.ByQuery),
		chromedp.WaitVisible(tid("matrix"), chromedp.ByQuery))
	if p := s.path(); p != "/locations/"+m.Matrix {
		t.Errorf("location page at %s", p)
	}
	if n := s.count(tid("matrix-cell")); n != 5*4 {
		t.Errorf("matrix cells: %d, want 20 (5 segments)", n)
	}
	if n := s.count(tid("matrix-cell") + `[data-status="reachable-against-policy"]`); n == 0 {
		t.Errorf("no matrix cell is reachable against the policy at %s (firewall partial or flat)", m.Matrix)
	}
	s.shot("location")

	// 6. Findings, then one finding.
	s.run("open the findings",
		chromedp.Click(`nav a[href="/findings"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("findings-table"), chromedp.ByQuery))
	total, _ := strconv.Atoi(strings.ReplaceAll(s.text(tid("findings-total")), ",", ""))
	if total == 0 || s.count(tid("finding-row")) == 0 {
		t.Fatalf("the findings page lists nothing (total %d)", total)
	}
	s.shot("findings")
	var findingID string
	s.run("open the first open finding",
		chromedp.AttributeValue(tid("finding-row"), "data-id", &findingID, nil, chromedp.ByQuery),
		chromedp.Click(tid("finding-row")+` a`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("finding-facts"), chromedp.ByQuery))
	if st := s.text(tid("finding-status")); !strings.HasPrefix(st, "open") {
		t.Fatalf("first finding's status %q, want open", st)
	}
	if s.count(tid("history")+" tbody tr") == 0 {
		t.Errorf("finding %s shows no history", findingID)
	}
	s.shot("finding")

	// 7. Accept it with a reason and an expiry.
	reason := "Compensating control in place until the fix ships next quarter"
	until := time.Now().AddDate(0, 0, 90).Format(time.DateOnly)
	s.run("accept the finding",
		chromedp.SetValue(tid("accept-form")+` input[name="reason"]`, reason, chromedp.ByQuery),
		chromedp.SetValue(tid("accept-form")+` input[name="until"]`, until, chromedp.ByQuery),
		chromedp.Click(tid("accept"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("reopen-form"), chromedp.ByQuery))
	st := s.text(tid("finding-status"))
	for _, want := range []string{"accepted", user, until, reason} {
		if !strings.Contains(st, want) {
			t.Errorf("status after accepting: %q, want it to say %q", st, want)
		}
	}
	s.shot("finding-accepted")

	// 8. Export the open findings as CSV from the reports page: a real
	// download; the accepted finding is no longer in it.
	downloads := t.TempDir()
	var (
		mu       sync.Mutex
		doneGUID string
		fileName string
	)
	done := make(chan struct{}, 1)
	chromedp.ListenTarget(bctx, func(ev any) {
		switch e := ev.(type) {
		case *browser.EventDownloadWillBegin:
			mu.Lock()
			fileName = e.SuggestedFilename
			mu.Unlock()
		case *browser.EventDownloadProgress:
			if e.State == browser.DownloadProgressStateCompleted {
				mu.Lock()
				doneGUID = e.GUID
				mu.Unlock()
				select {
				case done <- struct{}{}:
				default:
				}
			}
		}
	})
	s.run("open the reports",
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(downloads).WithEventsEnabled(true),
		chromedp.Click(`nav a[href="/reports"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("export-findings-csv"), chromedp.ByQuery))
	s.run("download the findings CSV", chromedp.Click(tid("export-findings-csv"), chromedp.ByQuery))
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("the findings CSV download did not complete")
	}
	mu.Lock()
	csvPath := filepath.Join(downloads, doneGUID)
	t.Logf("downloaded %s", fileName)
	mu.Unlock()
	b, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || !strings.Contains(strings.ToLower(lines[0]), "severity") {
		t.Fatalf("findings CSV: %d lines, header %q", len(lines), lines[0])
	}
	if strings.Contains(string(b), findingID) {
		t.Errorf("the open-findings CSV still lists the accepted finding %s", findingID)
	}

	// 9. The other main pages, each with what a user looks for.
	s.run("open the controls",
		chromedp.Click(`nav a[href="/controls"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("controls-table"), chromedp.ByQuery))
	if s.count(tid("control-row")) == 0 {
		t.Errorf("no controls listed")
	}
	s.shot("controls")
	s.run("open a control's trace",
		chromedp.Click(tid("control-row")+` a[href^="/controls/"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("control-status"), chromedp.ByQuery))
	s.shot("control-trace")

	for _, p := range []struct{ nav, want, rows, name string }{
		{"/risks", "risks-table", "risk-row", "risks"},
		{"/scans", "scan-history", "scan-row", "scans"},
		{"/identities", "identities-table", "person-row", "identities"},
		{"/settings", "users-table", "user-row", "settings"},
	} {
		s.run("open "+p.nav,
			chromedp.Click(fmt.Sprintf(`nav a[href=%q]`, p.nav), chromedp.ByQuery),
			chromedp.WaitVisible(tid(p.want), chromedp.ByQuery))
		if s.count(tid(p.rows)) == 0 {
			t.Errorf("%s lists no %s", p.nav, p.rows)
		}
		s.shot(p.name)
	}

	// 10. A site agent: a one-time token created on the Agents page
	// enrolls an agent (through the agent protocol, as vigil agent does),
	// which then shows with its health; revoked, it is refused.
	s.run("open the agents",
		chromedp.Click(`nav a[href="/agents"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("agent-token-form"), chromedp.ByQuery))
	s.run("create an enrollment token",
		chromedp.SetValue(tid("agent-token-form")+` select[name="location"]`, m.LocationIDs[0], chromedp.ByQuery),
		chromedp.Click(tid("create-agent-token"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("agent-token"), chromedp.ByQuery))
	token := s.text(tid("agent-token"))
	if cmd := s.text(tid("agent-command")); !strings.Contains(cmd, "vigil agent --server") || !strings.Contains(cmd, token) {
		t.Errorf("the agent command shown is %q; want vigil agent --server ... --token %s", cmd, token)
	}
	ag, err := enrollAgent(ctx, srv.URL, token)
	if err != nil {
		t.Fatalf("enroll with the dashboard's token: %v", err)
	}
	if _, err := enrollAgent(ctx, srv.URL, token); err == nil {
		t.Error("the one-time token enrolled a second agent")
	}
	if code, err := ag.heartbeat(ctx, srv.URL, 3); err != nil || code != 200 {
		t.Fatalf("heartbeat: %d %v", code, err)
	}
	s.run("see the agent",
		chromedp.Click(`nav a[href="/agents"]`, chromedp.ByQuery),
		chromedp.WaitVisible(tid("agent-row"), chromedp.ByQuery))
	if got := s.text(tid("agent-status")); !strings.Contains(got, "ok") {
		t.Errorf("a fresh agent's status is %q, want ok", got)
	}
	if row := s.text(tid("agent-row")); !strings.Contains(row, ag.id) || !strings.Contains(row, "e2e-sensor") || !strings.Contains(row, "3 (") {
		t.Errorf("the agent row %q lacks its id, host or queue depth", row)
	}
	s.shot("agents")
	s.run("revoke the agent",
		chromedp.Click(tid("revoke-agent"), chromedp.ByQuery),
		chromedp.WaitVisible(tid("agents-notice"), chromedp.ByQuery))
	if got := s.text(tid("agent-status")); !strings.Contains(got, "revoked") {
		t.Errorf("after revoking, the status is %q", got)
	}
	if code, _ := ag.heartbeat(ctx, srv.URL, 0); code != 401 {
		t.Errorf("the revoked agent's heartbeat got %d, want 401", code)
	}
}
