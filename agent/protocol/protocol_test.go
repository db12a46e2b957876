package protocol

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestSignVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	body := []byte(`{"id":"s:1"}`)
	req := httptest.NewRequest(http.MethodPost, "https://vigil.example"+PathBatches+"?x=1", bytes.NewReader(body))
	Sign(req, "acme", "agt1", priv, body, now)

	s, err := ParseSigned(req, now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if s.Tenant != "acme" || s.AgentID != "agt1" {
		t.Fatalf("who = %s/%s", s.Tenant, s.AgentID)
	}
	if err := s.Verify(pub, req, body); err != nil {
		t.Fatalf("good signature refused: %v", err)
	}
	if err := s.Verify(pub, req, []byte(`{"id":"s:2"}`)); err == nil {
		t.Fatal("signature accepted for another body")
	}
	other, _, _ := ed25519.GenerateKey(nil)
	if err := s.Verify(other, req, body); err == nil {
		t.Fatal("signature accepted for another key")
	}
	req2 := httptest.NewRequest(http.MethodPost, "https://vigil.example"+PathHeartbeat+"?x=1", bytes.NewReader(body))
	req2.Header = req.Header.Clone()
	if err := s.Verify(pub, req2, body); err == nil {
		t.Fatal("signature accepted for another path")
	}
	if _, err := ParseSigned(req, now.Add(MaxClockSkew+time.Second)); err == nil {
		t.Fatal("stale date accepted")
	}
	if _, err := ParseSigned(req, now.Add(-MaxClockSkew-time.Second)); err == nil {
		t.Fatal("future date accepted")
	}
	req.Header.Del(HeaderAgent)
	if _, err := ParseSigned(req, now); err == nil {
		t.Fatal("missing agent header accepted")
	}
}

func TestToken(t *testing.T) {
	tok := NewToken("acme-medspa")
	got, err := ParseToken(" " + tok.String() + "\n")
	if err != nil || got != tok {
		t.Fatalf("ParseToken(%q) = %+v, %v", tok.String(), got, err)
	}
	if tok.Hash() == NewToken("acme-medspa").Hash() {
		t.Fatal("two tokens share a hash")
	}
	for _, bad := range []string{"", "vge1", "vge1.acme", "vge2.acme." + tok.Secret, "vge1..x" + tok.Secret, "vge1.acme.short", "vge1.a.b." + tok.Secret} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(NewToken("acme").String())
	f.Add("vge1.x.y")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil || again != tok {
			t.Fatalf("round trip of %q: %+v, %v", s, again, err)
		}
	})
}
