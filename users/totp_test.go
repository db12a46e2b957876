package users

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func code(t *testing.T, secret TOTPSecret, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret.Reveal(), at, totpOpts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewTOTP(t *testing.T) {
	e, err := NewTOTP("vigil", "dana@glow-spa")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(e.URL.Reveal())
	if err != nil || u.Scheme != "otpauth" || u.Host != "totp" {
		t.Fatalf("URL %v: %v", u, err)
	}
	q := u.Query()
	if q.Get("secret") != e.Secret.Reveal() || q.Get("issuer") != "vigil" || q.Get("digits") != "6" || q.Get("period") != "30" {
		t.Errorf("URL query %v does not carry the secret and standard settings", q)
	}
	if n := len(e.Secret.Reveal()); n != 32 { // 20 bytes in base32
		t.Errorf("secret is %d base32 characters, want 32 (160 bits)", n)
	}
}

func TestCheckTOTP(t *testing.T) {
	e, _ := NewTOTP("vigil", "dana")
	s := e.Secret
	now := time.Date(2026, 3, 4, 10, 0, 15, 0, time.UTC)
	step := totpStep(now)
	other, _ := NewTOTP("vigil", "other")
	tests := []struct {
		name     string
		code     string
		lastStep int64
		want     int64
		err      error
	}{
		{"current step", code(t, s, now), 0, step, nil},
		{"previous step within skew", code(t, s, now.Add(-30*time.Second)), 0, step - 1, nil},
		{"next step within skew", code(t, s, now.Add(30*time.Second)), 0, step + 1, nil},
		{"two steps old", code(t, s, now.Add(-60*time.Second)), 0, 0, ErrTOTPInvalid},
		{"two steps ahead", code(t, s, now.Add(60*time.Second)), 0, 0, ErrTOTPInvalid},
		{"other secret", code(t, other.Secret, now), 0, 0, ErrTOTPInvalid},
		{"replay of the same step", code(t, s, now), step, 0, ErrTOTPReplay},
		{"earlier step after a later one", code(t, s, now.Add(-30*time.Second)), step, 0, ErrTOTPReplay},
		{"later step after an earlier one", code(t, s, now.Add(30*time.Second)), step, step + 1, nil},
		{"spaces trimmed", " " + code(t, s, now) + " ", 0, step, nil},
		{"letters", "12a456", 0, 0, ErrTOTPInvalid},
		{"five digits", "12345", 0, 0, ErrTOTPInvalid},
		{"empty", "", 0, 0, ErrTOTPInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CheckTOTP(s, tt.code, now, tt.lastStep)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Errorf("CheckTOTP = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if _, err := CheckTOTP(TOTPSecret{}, "123456", now, 0); !errors.Is(err, ErrTOTPInvalid) {
		t.Errorf("no secret: %v", err)
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes, err := NewRecoveryCodes(RecoveryCodeCount)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		s := c.Reveal()
		if len(s) != 19 || strings.Count(s, "-") != 3 || !looksLikeRecoveryCode(s) || seen[s] {
			t.Errorf("code %q: want 4 groups of 4, distinct", s)
		}
		seen[s] = true
	}
	c := codes[0]
	h := HashRecoveryCode("glow", "u1", c)
	if h == c.Reveal() || len(h) != 64 {
		t.Errorf("hash %q", h)
	}
	typed := strings.ToUpper(strings.ReplaceAll(c.Reveal(), "-", " "))
	if HashRecoveryCode("glow", "u1", NewRecoveryCode(typed)) != h {
		t.Error("a code typed in capitals with spaces does not match")
	}
	if HashRecoveryCode("glow", "u2", c) == h || HashRecoveryCode("other", "u1", c) == h {
		t.Error("the hash does not depend on the user")
	}
	if looksLikeRecoveryCode("123456") {
		t.Error("a TOTP code looks like a recovery code")
	}
}
