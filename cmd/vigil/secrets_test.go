package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Distinctive secret values: if any reaches stdout, stderr, the report or
// the store, the test names it.
const (
	graphSecret = "graph-client-secret-Zq8w1"
	graphToken  = "eyJhbGciOiJub25lIn0.graph-access-token-Kx2v.sig"
	oktaToken   = "00okta-api-token-Pp4r7"
)

// cloudFixture serves just enough of Microsoft Graph (client-credentials
// token, users, the MFA registration report, directory roles) and Okta
// (users, factors, roles) for one account each. When leak is set, every
// API answer is a 401 whose body echoes the credentials it was sent, as a
// careless proxy might: vigil must not pass them on.
func cloudFixture(t *testing.T, leak bool) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	writeJSON := func(w http.ResponseWriter, v any) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("POST /tenant/oauth2/v2.0/token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if r.Form.Get("client_secret") != graphSecret {
			w.WriteHeader(http.StatusUnauthorized)
			writeJSON(w, map[string]any{"error": "invalid_client", "error_description": "bad secret " + r.Form.Get("client_secret")})
			return
		}
		writeJSON(w, map[string]any{"access_token": graphToken, "token_type": "Bearer", "expires_in": 3600})
	})
	auth := func(want string, next http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			got := r.Header.Get("Authorization")
			if leak || got != want {
				w.WriteHeader(http.StatusUnauthorized)
				writeJSON(w, map[string]any{"error": map[string]any{"code": "InvalidAuthenticationToken", "message": "token rejected: " + got},
					"errorCode": "E0000011", "errorSummary": "Invalid token provided: " + got})
				return
			}
			next(w, r)
		}
	}
	graph := func(v any) http.HandlerFunc {
		return auth("Bearer "+graphToken, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, v) })
	}
	mux.HandleFunc("GET /v1.0/users", graph(map[string]any{"value": []any{map[string]any{
		"id": "u1", "userPrincipalName": "jane@glow.example", "mail": "jane@glow.example", "displayName": "Jane",
		"accountEnabled": true, "createdDateTime": "2024-01-01T00:00:00Z",
		"signInActivity": map[string]any{"lastSuccessfulSignInDateTime": time.Now().UTC().Format(time.RFC3339)}}}}))
	mux.HandleFunc("GET /v1.0/reports/authenticationMethods/userRegistrationDetails", graph(map[string]any{"value": []any{map[string]any{
		"id": "u1", "userPrincipalName": "jane@glow.example", "isMfaRegistered": false, "isMfaCapable": false, "isAdmin": false, "methodsRegistered": []string{}}}}))
	mux.HandleFunc("GET /v1.0/directoryRoles", graph(map[string]any{"value": []any{}}))
	okta := func(v any) http.HandlerFunc {
		return auth("SSWS "+oktaToken, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, v) })
	}
	mux.HandleFunc("GET /api/v1/users", okta([]any{map[string]any{
		"id": "o1", "status": "ACTIVE", "created": "2024-01-01T00:00:00.000Z", "lastLogin": time.Now().UTC().Format(time.RFC3339),
		"profile": map[string]any{"login": "sam@glow.example", "email": "sam@glow.example", "firstName": "Sam", "lastName": "Lee"}}}))
	mux.HandleFunc("GET /api/v1/users/o1/factors", okta([]any{}))
	mux.HandleFunc("GET /api/v1/users/o1/roles", okta([]any{}))
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// Secrets never appear in logs, findings, the JSON report, errors or the
// store, whether the sources answer or refuse.
func TestSecretsNeverLeak(t *testing.T) {
	for _, leak := range []bool{false, true} {
		t.Run(fmt.Sprintf("api-refuses=%v", leak), func(t *testing.T) {
			srv := cloudFixture(t, leak)
			dir := t.TempDir()
			ca := filepath.Join(dir, "ca.pem")
			if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
				t.Fatal(err)
			}
			secretFile := filepath.Join(dir, "graph.secret")
			if err := os.WriteFile(secretFile, []byte(graphSecret+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := writeConfig(t, fmt.Sprintf(`organization: T
data_dir: %q
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
identity:
  - {type: entra, system: m365, tenant_id: tenant, client_id: app, client_secret_file: %q, ca_file: %q,
     api_url: "%s/v1.0", token_url: "%s/tenant/oauth2/v2.0/token"}
  - {type: okta, system: okta, org_url: %q, token_env: VIGIL_TEST_OKTA_TOKEN, ca_file: %q}
`, filepath.Join(dir, "data"), secretFile, ca, srv.URL, srv.URL, srv.URL, ca))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			report := filepath.Join(dir, "report.json")
			cmd := exec.CommandContext(ctx, vigilBin, "scan", "--config", cfg, "--only", "identity", "--format", "json",
				"--output", report, "--verbose", "--fail-on", "critical")
			cmd.Env = append(os.Environ(), "VIGIL_TEST_OKTA_TOKEN="+oktaToken)
			var o, e bytes.Buffer
			cmd.Stdout, cmd.Stderr = &o, &e
			cmd.Run()
			code := cmd.ProcessState.ExitCode()
			rep, _ := os.ReadFile(report)
			db, _ := os.ReadFile(filepath.Join(dir, "data", "vigil.db"))
			if !leak && (code != 0 || !bytes.Contains(rep, []byte("id.remote-without-mfa"))) {
				t.Fatalf("exit %d; want 0 and a finding about jane's missing MFA; stderr:\n%s\nreport:\n%s", code, e.String(), rep)
			}
			if leak && (code != 2 || !strings.Contains(e.String(), "okta:okta") || !strings.Contains(e.String(), "entra:m365")) {
				t.Fatalf("exit %d; want 2 and both sources named as not read; stderr:\n%s", code, e.String())
			}
			for name, out := range map[string][]byte{"stdout": o.Bytes(), "stderr": e.Bytes(), "report": rep, "store": db} {
				for _, s := range []string{graphSecret, graphToken, oktaToken, "graph-access-token", "okta-api-token"} {
					if bytes.Contains(out, []byte(s)) {
						t.Errorf("%s contains the secret %q", name, s)
					}
				}
			}
		})
	}
}
