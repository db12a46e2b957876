package users

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestSecretsRedacted prints every secret type every way a log line or an
// error message might, and fails if the value shows.
func TestSecretsRedacted(t *testing.T) {
	const raw = "s3cr3t-VALUE-7x"
	secrets := map[string]any{
		"Password":     NewPassword(raw),
		"TOTPSecret":   NewTOTPSecret(raw),
		"OTPAuthURL":   OTPAuthURL{raw},
		"SessionToken": NewSessionToken(raw),
		"RecoveryCode": NewRecoveryCode(raw),
		"SetupToken":   NewSetupToken(raw),
		"User": User{Username: "dana", PasswordHash: "$argon2id$x", TOTPSecret: NewTOTPSecret(raw),
			TOTPPending: NewTOTPSecret(raw)},
		"TOTPEnrollment": TOTPEnrollment{Secret: NewTOTPSecret(raw), URL: OTPAuthURL{"otpauth://totp/x?secret=" + raw}},
		"pointer":        &struct{ P Password }{NewPassword(raw)},
		"slice":          []RecoveryCode{NewRecoveryCode(raw)},
	}
	for name, v := range secrets {
		t.Run(name, func(t *testing.T) {
			var out []string
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
				out = append(out, fmt.Sprintf(verb, v))
			}
			out = append(out, fmt.Sprint(v), fmt.Sprintln(v), fmt.Errorf("login: %v", v).Error())
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "v", v)
			slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "v", v)
			out = append(out, buf.String())
			if b, err := json.Marshal(v); err == nil {
				out = append(out, string(b))
			}
			for _, s := range out {
				if strings.Contains(s, raw) || strings.Contains(s, "$argon2id$x") {
					t.Errorf("secret shows in %q", s)
				}
			}
		})
	}
	if NewPassword(raw).Reveal() != raw || NewSessionToken(raw).Reveal() != raw {
		t.Error("Reveal does not return the value")
	}
}
