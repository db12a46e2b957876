package synth

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp/totp"
)

// Client is one dashboard user's browser-less session: a cookie jar and
// the forms of the pages it reads (every form carries a csrf_token).
type Client struct {
	Base string
	HTTP *http.Client
	// Bearer, when set, is sent as Authorization: Bearer on every request.
	Bearer string
}

// NewClient returns a client with its own cookie jar (its own session).
func NewClient(base string) *Client {
	jar, _ := cookiejar.New(nil)
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

// Page is a response read in full.
type Page struct {
	URL    *url.URL // after redirects
	Status int
	Body   string
}

func (c *Client) do(ctx context.Context, method, u string, form url.Values) (*Page, error) {
	if strings.HasPrefix(u, "/") {
		u = c.Base + u
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.Bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.Bearer)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(b)}, nil
}

// Get fetches a page (path or absolute URL).
func (c *Client) Get(ctx context.Context, u string) (*Page, error) {
	return c.do(ctx, http.MethodGet, u, nil)
}

// Form is one <form> of a page.
type Form struct {
	Action, Method string
	// Fields are the inputs' names and default values, in page order.
	Fields []Field
	HTML   string
}

// Field is one named input, select or textarea.
type Field struct {
	Name, Type, Value string
}

// Has reports whether the form has a field called name.
func (f *Form) Has(name string) bool {
	for _, x := range f.Fields {
		if x.Name == name {
			return true
		}
	}
	return false
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<(input|select|textarea|button)\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?is)([a-z][a-z0-9_:-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
)

func attrs(s string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRE.FindAllStringSubmatch(s, -1) {
		v := m[2]
		if v == "" {
			v = m[3]
		}
		out[strings.ToLower(m[1])] = html.UnescapeString(v)
	}
	return out
}

// Forms returns the forms of an HTML page.
func Forms(page string) []Form {
	var out []Form
	for _, m := range formRE.FindAllStringSubmatch(page, -1) {
		a := attrs(m[1])
		f := Form{Action: a["action"], Method: strings.ToUpper(a["method"]), HTML: m[0]}
		if f.Method == "" {
			f.Method = http.MethodGet
		}
		body := m[2]
		for _, ix := range inputRE.FindAllStringSubmatchIndex(body, -1) {
			tag, rest := body[ix[2]:ix[3]], body[ix[4]:ix[5]]
			ia := attrs(rest)
			if ia["name"] == "" || strings.EqualFold(tag, "button") {
				continue
			}
			typ := ia["type"]
			val := ia["value"]
			switch {
			case strings.EqualFold(tag, "select"):
				typ = "select"
				val = selectedOption(body[ix[1]:], strings.Contains(strings.ToLower(rest), "multiple"))
			case strings.EqualFold(tag, "textarea"):
				typ = "textarea"
			case (typ == "checkbox" || typ == "radio") && !strings.Contains(strings.ToLower(rest), "checked"):
				continue
			}
			f.Fields = append(f.Fields, Field{Name: ia["name"], Type: typ, Value: val})
		}
		out = append(out, f)
	}
	return out
}

var optionRE = regexp.MustCompile(`(?is)<option\b([^>]*)>([^<]*)`)

// selectedOption is what a browser submits for a <select> whose options
// follow in rest: the selected option, else the first (none for a
// multiple select without a selection).
func selectedOption(rest string, multiple bool) string {
	if end := strings.Index(strings.ToLower(rest), "</select>"); end >= 0 {
		rest = rest[:end]
	}
	first, have := "", false
	for _, o := range optionRE.FindAllStringSubmatch(rest, -1) {
		a := attrs(o[1])
		v, ok := a["value"]
		if !ok {
			v = strings.TrimSpace(html.UnescapeString(o[2]))
		}
		if regexp.MustCompile(`(?i)\bselected\b`).MatchString(o[1]) {
			return v
		}
		if !have {
			first, have = v, true
		}
	}
	if multiple {
		return ""
	}
	return first
}

// ErrNoForm is returned when a page has no form a caller looked for.
var ErrNoForm = errors.New("no such form on the page")

// Submit finds the first form on page that pick accepts, fills it with
// its defaults overridden by set, and sends it.
func (c *Client) Submit(ctx context.Context, page *Page, pick func(*Form) bool, set map[string]string) (*Page, error) {
	for _, f := range Forms(page.Body) {
		if pick != nil && !pick(&f) {
			continue
		}
		vals := url.Values{}
		for _, x := range f.Fields {
			if x.Type == "select" && x.Value == "" {
				continue // no option marked: the caller chooses
			}
			vals.Set(x.Name, x.Value)
		}
		for k, v := range set {
			vals.Set(k, v)
		}
		action := f.Action
		if action == "" {
			action = page.URL.String()
		}
		u, err := page.URL.Parse(action)
		if err != nil {
			return nil, err
		}
		if f.Method == http.MethodGet {
			u.RawQuery = vals.Encode()
			return c.do(ctx, http.MethodGet, u.String(), nil)
		}
		return c.do(ctx, f.Method, u.String(), vals)
	}
	return nil, fmt.Errorf("%s: %w", page.URL.Path, ErrNoForm)
}

// LoginToken signs in with the shared dashboard token (the dashboard of
// vigil before per-user accounts): GET /login, POST the token with the
// form's csrf_token. The session cookie stays in the client's jar.
func (c *Client) LoginToken(ctx context.Context, token string) error {
	p, err := c.Get(ctx, "/login")
	if err != nil {
		return err
	}
	p, err = c.Submit(ctx, p, func(f *Form) bool { return f.Has("token") }, map[string]string{"token": token})
	if err != nil {
		return err
	}
	if p.Status != http.StatusOK || strings.HasPrefix(p.URL.Path, "/login") {
		return fmt.Errorf("token login: ended on %s with %d", p.URL.Path, p.Status)
	}
	return nil
}

// Account is a dashboard user the harness signs in as.
type Account struct {
	Tenant, Username, Password string
	// TOTPSecret is the base32 secret enrolled for the user; "" when
	// the user has no MFA.
	TOTPSecret string
}

// TOTP hands out codes that have not been used yet: the dashboard refuses
// a code for a step it already accepted, so a second code waits for the
// next 30 s step.
type TOTP struct {
	mu   sync.Mutex
	last map[string]int64
}

// Code returns a code for secret from a step never handed out before,
// waiting for the next step when needed.
func (t *TOTP) Code(ctx context.Context, secret string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.last == nil {
		t.last = map[string]int64{}
	}
	for {
		now := time.Now()
		step := now.Unix() / 30
		if step > t.last[secret] {
			t.last[secret] = step
			return totp.GenerateCode(secret, now)
		}
		wait := time.Unix((step+1)*30, 0).Sub(now) + 50*time.Millisecond
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

// SecretRE finds a TOTP secret on an enrollment page: in the element
// marked data-testid="enroll-secret" or in the otpauth:// URL.
var SecretRE = regexp.MustCompile(`(?:secret=|data-testid="enroll-secret"[^>]*>\s*)([A-Z2-7]{16,}(?:[ ]?[A-Z2-7]{4})*)`)

// EnrollSecret returns the TOTP secret shown on an enrollment page.
func EnrollSecret(page string) (string, bool) {
	m := SecretRE.FindStringSubmatch(html.UnescapeString(page))
	if m == nil {
		return "", false
	}
	return strings.ReplaceAll(m[1], " ", ""), true
}

func isPath(p *Page, prefix string) bool { return strings.HasPrefix(p.URL.Path, prefix) }

// Login signs a in with tenant, user name and password, then a TOTP code
// when the dashboard asks for one. When the dashboard makes the user
// enroll first (an owner's first sign-in), it enrolls, stores the secret
// in a.TOTPSecret and carries on. It returns the page it ends on.
func (c *Client) Login(ctx context.Context, a *Account, codes *TOTP) (*Page, error) {
	p, err := c.Get(ctx, "/login")
	if err != nil {
		return nil, err
	}
	set := map[string]string{"username": a.Username, "password": a.Password}
	if a.Tenant != "" {
		set["tenant"] = a.Tenant
	}
	p, err = c.Submit(ctx, p, func(f *Form) bool { return f.Has("password") }, set)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 4; i++ {
		switch {
		case isPath(p, "/login/enroll"):
			secret, ok := EnrollSecret(p.Body)
			if !ok {
				return p, fmt.Errorf("enrollment page shows no TOTP secret")
			}
			a.TOTPSecret = secret
			code, err := codes.Code(ctx, secret)
			if err != nil {
				return p, err
			}
			if p, err = c.Submit(ctx, p, func(f *Form) bool { return f.Has("code") }, map[string]string{"code": code}); err != nil {
				return p, err
			}
			// Recovery codes are shown once, with a link on to the
			// dashboard.
			if isPath(p, "/login/enroll") && !strings.Contains(p.Body, `name="code"`) {
				if p, err = c.Get(ctx, "/"); err != nil {
					return p, err
				}
			}
		case isPath(p, "/login/mfa"):
			if a.TOTPSecret == "" {
				return p, errors.New("the dashboard asks for a TOTP code and the account has no secret")
			}
			code, err := codes.Code(ctx, a.TOTPSecret)
			if err != nil {
				return p, err
			}
			if p, err = c.Submit(ctx, p, func(f *Form) bool { return f.Has("code") }, map[string]string{"code": code}); err != nil {
				return p, err
			}
		case isPath(p, "/login"):
			return p, fmt.Errorf("sign-in refused (%d on %s): %s", p.Status, p.URL.Path, FlashText(p.Body))
		default:
			return p, nil
		}
	}
	return p, fmt.Errorf("sign-in did not finish: still on %s", p.URL.Path)
}

var flashRE = regexp.MustCompile(`(?is)<(?:p|div)[^>]*class="[^"]*(?:error|flash|alert)[^"]*"[^>]*>(.*?)</(?:p|div)>`)
var tagRE = regexp.MustCompile(`<[^>]+>`)

// FlashText returns the first error message on a page, for test output.
func FlashText(page string) string {
	if m := flashRE.FindStringSubmatch(page); m != nil {
		return strings.TrimSpace(html.UnescapeString(tagRE.ReplaceAllString(m[1], "")))
	}
	return ""
}
