package ldapidentity

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/config"
)

// silentServer accepts connections on loopback and never answers,
// recording what the client sent.
type silentServer struct {
	l    net.Listener
	mu   sync.Mutex
	got  []byte
	done chan struct{}
}

func newSilentServer(t *testing.T, reply []byte) *silentServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{l: l, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-s.done; c.Close() }()
				if reply != nil {
					c.Write(reply) //nolint:errcheck
				}
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					s.got = append(s.got, buf[:n]...)
					s.mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { close(s.done); l.Close(); wg.Wait() })
	return s
}

func (s *silentServer) url(scheme string) string { return scheme + "://" + s.l.Addr().String() }

func TestTimeouts(t *testing.T) {
	t.Parallel()
	srv := newSilentServer(t, nil)
	for _, scheme := range []string{"ldap", "ldaps"} {
		t.Run(scheme+" operation timeout", func(t *testing.T) {
			s := newSource(t, srv.url(scheme))
			s.Timeout = 200 * time.Millisecond
			start := time.Now()
			_, err := s.Collect(context.Background())
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("error %v, want ErrTimeout", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("gave up after %s with a 200ms timeout", took)
			}
			t.Logf("error: %s", err)
		})
		t.Run(scheme+" context deadline", func(t *testing.T) {
			s := newSource(t, srv.url(scheme)) // 10s per operation
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, err := s.Collect(ctx)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want context.DeadlineExceeded", err)
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("gave up after %s with a 200ms deadline", took)
			}
		})
	}
}

func TestNotLDAP(t *testing.T) {
	t.Parallel()
	// An HTTP server answering on the port: StartTLS must not be mistaken
	// for a refusal that allow_plaintext would accept.
	srv := newSilentServer(t, []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"))
	s := newSource(t, srv.url("ldap"), func(src *config.IdentitySource) { src.AllowPlaintext = true })
	s.Timeout = time.Second
	_, err := s.Collect(context.Background())
	if err == nil {
		t.Fatal("Collect against an HTTP server: no error")
	}
	t.Logf("error: %s", err)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if strings.Contains(string(srv.got), vigilPW) {
		t.Error("the password was sent to a server that never started TLS")
	}
}

func TestRefusedConnection(t *testing.T) {
	t.Parallel()
	port := freePorts(t, 1)[0]
	s := newSource(t, "ldaps://127.0.0.1:"+strconv.Itoa(port))
	_, err := s.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "cannot connect to 127.0.0.1:") {
		t.Fatalf("error %v, want cannot connect", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	ok := config.IdentitySource{
		Type: "ldap", System: "ad", URL: "ldaps://dc1.spa.local", BaseDN: "DC=spa,DC=local",
		BindDNEnv: "VIGIL_LDAP_BIND_DN", PasswordFile: "/run/secrets/ldap",
	}
	if s, err := New(ok); err != nil || s.Name() != "ldap:ad" {
		t.Fatalf("New(valid) = %v, %v", s, err)
	}
	for _, tc := range []struct {
		name string
		edit func(*config.IdentitySource)
		want string
	}{
		{"type", func(s *config.IdentitySource) { s.Type = "csv" }, `type "csv" is not ldap`},
		{"system", func(s *config.IdentitySource) { s.System = "" }, "no system label"},
		{"no url", func(s *config.IdentitySource) { s.URL = "" }, "url is required"},
		{"scheme", func(s *config.IdentitySource) { s.URL = "https://dc1" }, "scheme must be ldaps:// or ldap://"},
		{"ldapi", func(s *config.IdentitySource) { s.URL = "ldapi:///run/slapd.sock" }, "scheme must be"},
		{"no host", func(s *config.IdentitySource) { s.URL = "ldaps://" }, "has no host"},
		{"base in url", func(s *config.IdentitySource) { s.URL = "ldap://dc1/dc=spa,dc=local?sub" }, "goes in base_dn"},
		{"credentials in url", func(s *config.IdentitySource) { s.URL = "ldaps://admin:hunter2@dc1" }, "credentials do not belong in the URL"},
		{"bad base_dn", func(s *config.IdentitySource) { s.BaseDN = "spa.local" }, "not a distinguished name"},
		{"no bind dn", func(s *config.IdentitySource) { s.BindDNEnv = "" }, "set bind_dn_env or bind_dn_file"},
		{"no password", func(s *config.IdentitySource) { s.PasswordFile = "" }, "set password_env or password_file"},
		{"bad filter", func(s *config.IdentitySource) { s.UserFilter = "(&(department=spa)" }, "user_filter"},
		{"bad admin group", func(s *config.IdentitySource) { s.AdminGroups = []string{"CN=Domain Admins,,"} }, "admin_groups"},
		{"empty admin group", func(s *config.IdentitySource) { s.AdminGroups = []string{" "} }, "empty group name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := ok
			tc.edit(&src)
			_, err := New(src)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q repeats a password", err)
			}
		})
	}

	// A filter without parentheses is accepted and narrows the default.
	src := ok
	src.UserFilter = "department=Laser"
	s, err := New(src)
	if err != nil {
		t.Fatal(err)
	}
	set, _ := settingsOf(s.Config)
	if want := "(&" + defaultFilter + "(department=Laser))"; set.filter != want {
		t.Errorf("filter %q, want %q", set.filter, want)
	}
}

func TestSecretsMissing(t *testing.T) {
	t.Parallel()
	s := newSource(t, "ldaps://127.0.0.1:1", func(src *config.IdentitySource) {
		src.BindDNFile, src.BindDNEnv = "", "VIGIL_TEST_LDAP_DN_UNSET"
	})
	_, err := s.Collect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "ldap:ad: bind_dn_env: environment variable VIGIL_TEST_LDAP_DN_UNSET is not set") {
		t.Errorf("error %v", err)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	err := redact(errors.Join(context.Canceled, errors.New("server said: bad password hunter2!")), "hunter2")
	if strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "[redacted]") {
		t.Errorf("redact: %q", err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Error("redact lost errors.Is")
	}
	if errors.Unwrap(err) != nil {
		t.Error("redact exposes the unredacted error through Unwrap")
	}
}
