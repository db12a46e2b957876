package users

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// PasswordPolicy is what a new password must satisfy. It follows NIST SP
// 800-63B section 3.1.1.2: a minimum length, a generous maximum, and a check
// against known-common and context-specific passwords, with no composition
// rules and no periodic expiry.
type PasswordPolicy struct {
	MinLength int // characters (Unicode code points)
	MaxLength int // bytes; bounds the work one hash does
}

// DefaultPolicy is a minimum of 12 characters and a maximum of 1024 bytes.
var DefaultPolicy = PasswordPolicy{MinLength: 12, MaxLength: 1024}

// ErrWeakPassword is wrapped by every policy refusal; the message says what
// to change.
var ErrWeakPassword = errors.New("password refused")

//go:embed common-passwords.txt
var commonPasswordsFile string

// commonPasswords is read once from the embedded list; it is never written
// after init.
var commonPasswords = func() map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(commonPasswordsFile))
	for sc.Scan() {
		if w := strings.TrimSpace(sc.Text()); w != "" && !strings.HasPrefix(w, "#") {
			m[strings.ToLower(w)] = true
		}
	}
	return m
}()

// Check returns nil when pw is acceptable for the account named username
// with address email, or an error wrapping ErrWeakPassword that tells the
// user what to do.
func (p PasswordPolicy) Check(pw Password, username, email string) error {
	s := pw.Reveal()
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: it is not valid UTF-8 text", ErrWeakPassword)
	}
	if n := utf8.RuneCountInString(s); n < p.MinLength {
		return fmt.Errorf("%w: use at least %d characters (a few unrelated words make a good one)", ErrWeakPassword, p.MinLength)
	}
	if len(s) > p.MaxLength {
		return fmt.Errorf("%w: use at most %d bytes", ErrWeakPassword, p.MaxLength)
	}
	lower := strings.ToLower(s)
	if commonPasswords[lower] || commonPasswords[strings.TrimRight(lower, "0123456789!.?")] {
		return fmt.Errorf("%w: it is on a list of commonly used passwords; choose another", ErrWeakPassword)
	}
	local, _, _ := strings.Cut(email, "@")
	for _, w := range []string{username, email, local} {
		if w = strings.ToLower(strings.TrimSpace(w)); len(w) >= 3 && strings.Contains(lower, w) {
			return fmt.Errorf("%w: it contains your user name or email address", ErrWeakPassword)
		}
	}
	if distinct(s) < 4 {
		return fmt.Errorf("%w: it repeats too few characters; choose another", ErrWeakPassword)
	}
	return nil
}

func distinct(s string) int {
	seen := map[rune]bool{}
	for _, r := range s {
		seen[r] = true
	}
	return len(seen)
}
