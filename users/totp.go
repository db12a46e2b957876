package users

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP settings: RFC 6238 defaults (SHA-1, 6 digits, 30 s), which every
// authenticator app supports, a 160-bit secret (RFC 4226 section 4
// recommends 160), and one step of clock skew either side.
const (
	totpPeriod     = 30
	totpSkew       = 1
	totpSecretSize = 20
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// Errors of second-factor checks. Callers show users one message for all
// of them; the difference goes to the audit trail.
var (
	ErrTOTPInvalid     = errors.New("wrong or expired code")
	ErrTOTPReplay      = errors.New("code already used")
	ErrRecoveryInvalid = errors.New("unknown or used recovery code")
)

// TOTPEnrollment is a new, unconfirmed TOTP secret and its otpauth URL for
// the user's authenticator app (usually shown as a QR code).
type TOTPEnrollment struct {
	Secret TOTPSecret
	URL    OTPAuthURL
}

// NewTOTP generates a secret for account at issuer.
func NewTOTP(issuer, account string) (TOTPEnrollment, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: issuer, AccountName: account, Period: totpPeriod,
		SecretSize: totpSecretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return TOTPEnrollment{}, fmt.Errorf("generate TOTP secret: %w", err)
	}
	return TOTPEnrollment{Secret: TOTPSecret{key.Secret()}, URL: OTPAuthURL{key.URL()}}, nil
}

// totpStep is the RFC 6238 time step of t.
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// CheckTOTP looks for code among the steps within the skew of now and
// returns the step it matched. A match at or before lastStep, the last step
// the user signed in with, is a replay: ErrTOTPReplay. Every step in the
// window is computed and compared in constant time whatever matches.
func CheckTOTP(secret TOTPSecret, code string, now time.Time, lastStep int64) (int64, error) {
	code = strings.TrimSpace(code)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" || secret.IsZero() {
		return 0, ErrTOTPInvalid
	}
	cur := totpStep(now)
	var match int64 = -1
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := totp.GenerateCodeCustom(secret.Reveal(), time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, fmt.Errorf("TOTP secret unusable: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && match < 0 {
			match = s
		}
	}
	switch {
	case match < 0:
		return 0, ErrTOTPInvalid
	case match <= lastStep:
		return 0, ErrTOTPReplay
	}
	return match, nil
}

// recoveryAlphabet is lower-case base32 without padding: no symbols to
// mistype, and 1/0 never clash with l/o because those are absent.
var recoveryEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// RecoveryCodeCount is how many recovery codes a user gets at enrollment.
const RecoveryCodeCount = 10

// NewRecoveryCodes returns n fresh codes of 80 random bits each, written
// xxxx-xxxx-xxxx-xxxx.
func NewRecoveryCodes(n int) ([]RecoveryCode, error) {
	codes := make([]RecoveryCode, n)
	for i := range codes {
		b := make([]byte, 10)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		s := recoveryEncoding.EncodeToString(b) // 16 characters
		codes[i] = RecoveryCode{s[0:4] + "-" + s[4:8] + "-" + s[8:12] + "-" + s[12:16]}
	}
	return codes, nil
}

// HashRecoveryCode returns the stored form of a recovery code: SHA-256 over
// the user's id and the code without dashes, spaces or case. 80 random bits
// make a slow hash unnecessary; the user id keeps equal codes of two users
// apart.
func HashRecoveryCode(tenant TenantID, userID string, c RecoveryCode) string {
	norm := strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, c.Reveal())
	sum := sha256.Sum256([]byte("vigil recovery code\x00" + string(tenant) + "\x00" + userID + "\x00" + norm))
	return hex.EncodeToString(sum[:])
}

// looksLikeRecoveryCode tells a recovery code from a TOTP code at the one
// prompt that takes either.
func looksLikeRecoveryCode(s string) bool {
	return len(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(s))) == 16
}
