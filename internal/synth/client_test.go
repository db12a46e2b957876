package synth

import "testing"

func TestForms(t *testing.T) {
	page := `<form method="post" action="/setup" data-testid="setup-form">
  <input type="hidden" name="csrf_token" value="a&amp;b">
  <select name="tenant"><option value="glow">Glow</option><option value="lumen" selected>Lumen</option></select>
  <select name="role"><option>analyst</option><option>auditor</option></select>
  <select name="locations" multiple size="3"><option>a</option><option>b</option></select>
  <input name="username" required>
  <input type="checkbox" name="remember">
  <input type="checkbox" name="agree" checked value="yes">
  <textarea name="note"></textarea>
  <button type="submit" name="go">Create</button>
</form>
<form action="/logout" method="post"><input type="hidden" name="csrf_token" value="x"></form>`
	fs := Forms(page)
	if len(fs) != 2 {
		t.Fatalf("forms: %d, want 2", len(fs))
	}
	f := fs[0]
	if f.Action != "/setup" || f.Method != "POST" {
		t.Errorf("form 0: %s %s", f.Method, f.Action)
	}
	want := map[string]string{"csrf_token": "a&b", "tenant": "lumen", "role": "analyst", "locations": "", "username": "", "agree": "yes", "note": ""}
	got := map[string]string{}
	for _, x := range f.Fields {
		got[x.Name] = x.Value
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("field %s = %q (present %v), want %q", k, g, ok, v)
		}
	}
	for _, k := range []string{"remember", "go"} {
		if _, ok := got[k]; ok {
			t.Errorf("field %s should not be submitted", k)
		}
	}
}

func TestEnrollSecret(t *testing.T) {
	for _, tc := range []struct{ page, want string }{
		{`<code data-testid="enroll-secret">JBSWY3DPEHPK3PXP</code>`, "JBSWY3DPEHPK3PXP"},
		{`<code data-testid="enroll-url">otpauth://totp/vigil:owner?algorithm=SHA1&amp;digits=6&amp;issuer=vigil&amp;period=30&amp;secret=KRSXG5CTMVRXEZLU</code>`, "KRSXG5CTMVRXEZLU"},
	} {
		if got, ok := EnrollSecret(tc.page); !ok || got != tc.want {
			t.Errorf("EnrollSecret(%q) = %q, %v; want %q", tc.page, got, ok, tc.want)
		}
	}
	if _, ok := EnrollSecret("<p>no secret</p>"); ok {
		t.Errorf("found a secret in a page without one")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://[::1]:1", "http://localhost:2"} {
		if err := loopbackOnly(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.1.2.3:8080", "https://example.com"} {
		if loopbackOnly(u) == nil {
			t.Errorf("%s accepted", u)
		}
	}
}
