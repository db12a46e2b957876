package synth

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Owner is the first dashboard user the harness creates through the
// first-start setup link.
var Owner = Account{Username: "owner", Password: "correct horse battery staple 2026"}

// Setup completes the first-start setup at link with a's user name and
// password, filling every field the form has: user name, e-mail, display
// name, password and its confirmation. It returns the page it ends on.
func (c *Client) Setup(ctx context.Context, link string, a *Account) (*Page, error) {
	p, err := c.Get(ctx, link)
	if err != nil {
		return nil, err
	}
	var form *Form
	for _, f := range Forms(p.Body) {
		if strings.EqualFold(f.Method, "POST") {
			form = &f
			break
		}
	}
	if form == nil {
		return p, fmt.Errorf("setup page %s (%d) has no form", p.URL.Path, p.Status)
	}
	set := map[string]string{}
	for _, f := range form.Fields {
		n := strings.ToLower(f.Name)
		switch {
		case f.Type == "hidden":
		case strings.Contains(n, "password") || strings.Contains(n, "confirm"):
			set[f.Name] = a.Password
		case strings.Contains(n, "user"):
			set[f.Name] = a.Username
		case strings.Contains(n, "mail"):
			set[f.Name] = a.Username + "@lumen.example"
		case n == "tenant" && f.Value == "" && a.Tenant != "":
			set[f.Name] = a.Tenant
		case n == "tenant" && a.Tenant == "":
			a.Tenant = f.Value
		case strings.Contains(n, "name"):
			set[f.Name] = "Synthetic Owner"
		}
	}
	return c.Submit(ctx, p, func(f *Form) bool { return strings.EqualFold(f.Method, "POST") }, set)
}

// Sessions signs n clients in to srv and says how. With a dashboard that
// has per-user accounts (it prints a setup link), the owner is created
// through the link, enrolls TOTP and signs in with a code, then creates
// analysts in settings, one per further client up to shareAfter, who sign
// in with their passwords; clients beyond shareAfter share those
// sessions. With the shared-token dashboard every client logs in with the
// token.
func Sessions(ctx context.Context, srv *Server, n int, shareAfter int) ([]*Client, string, error) {
	clients := make([]*Client, n)
	for i := range clients {
		clients[i] = NewClient(srv.URL)
	}
	link, err := srv.SetupURL(5 * time.Second)
	if err != nil {
		// The shared-token dashboard.
		for _, c := range clients {
			if err := c.LoginToken(ctx, srv.Token); err != nil {
				return nil, "", fmt.Errorf("token login: %w", err)
			}
		}
		return clients, fmt.Sprintf("%d sessions from the shared dashboard token (POST /login)", n), nil
	}
	owner := Owner
	codes := &TOTP{}
	if p, err := clients[0].Setup(ctx, link, &owner); err != nil {
		return nil, "", fmt.Errorf("setup: %w", err)
	} else if p.Status >= 400 {
		return nil, "", fmt.Errorf("setup: %d on %s: %s", p.Status, p.URL.Path, FlashText(p.Body))
	}
	// Setup may sign the owner in directly or send them to /login.
	if p, err := clients[0].Get(ctx, "/"); err != nil {
		return nil, "", err
	} else if isPath(p, "/login") {
		if _, err := clients[0].Login(ctx, &owner, codes); err != nil {
			return nil, "", fmt.Errorf("owner login: %w", err)
		}
	}
	// The others: analysts the owner creates in settings (their role
	// needs no second factor), each signing in with its own session.
	own := 1
	for i := 1; i < n && i < shareAfter; i++ {
		a := &Account{Tenant: owner.Tenant, Username: fmt.Sprintf("bench-%02d", i), Password: fmt.Sprintf("synthetic analyst passphrase %02d", i)}
		if err := clients[0].CreateUser(ctx, a, "analyst"); err != nil {
			return nil, "", fmt.Errorf("create user %s: %w", a.Username, err)
		}
		if _, err := clients[i].Login(ctx, a, codes); err != nil {
			return nil, "", fmt.Errorf("login %s: %w", a.Username, err)
		}
		own++
	}
	for i := own; i < n; i++ { // copy the session cookies of a signed-in client
		u, _ := url.Parse(srv.URL)
		clients[i].HTTP.Jar.SetCookies(u, clients[i%own].HTTP.Jar.Cookies(u))
	}
	how := fmt.Sprintf("owner created through the setup link and signed in with password + TOTP; %d analysts created in settings, each signed in with its own session", own-1)
	if own < n {
		how += fmt.Sprintf(", shared by %d clients", n)
	}
	return clients, how, nil
}

// CreateUser has the signed-in owner or admin create a in settings with
// role, through the "create" form of /settings.
func (c *Client) CreateUser(ctx context.Context, a *Account, role string) error {
	p, err := c.Get(ctx, "/settings")
	if err != nil {
		return err
	}
	set := map[string]string{"username": a.Username, "email": a.Username + "@lumen.example", "role": role, "password": a.Password}
	p, err = c.Submit(ctx, p, func(f *Form) bool {
		for _, x := range f.Fields {
			if x.Name == "action" && x.Value == "create" {
				return true
			}
		}
		return false
	}, set)
	if err != nil {
		return err
	}
	if p.Status >= 400 {
		return fmt.Errorf("%d on %s: %s", p.Status, p.URL.Path, FlashText(p.Body))
	}
	return nil
}
