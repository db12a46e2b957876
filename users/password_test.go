package users

import (
	"errors"
	"strings"
	"testing"
)

// fastParams keep tests quick; BenchmarkHashPassword measures DefaultParams.
var fastParams = Params{Memory: 256, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	pw := NewPassword("correct horse battery staple")
	h, err := HashPassword(pw, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=256,t=1,p=1$") {
		t.Errorf("hash %q is not PHC argon2id with the parameters", h)
	}
	if h2, _ := HashPassword(pw, fastParams); h2 == h {
		t.Error("two hashes of one password are equal: salt not random")
	}
	tests := []struct {
		name       string
		pw         string
		want       Params
		ok, rehash bool
	}{
		{"right password", "correct horse battery staple", fastParams, true, false},
		{"wrong password", "correct horse battery stapler", fastParams, false, false},
		{"empty password", "", fastParams, false, false},
		{"case matters", "Correct horse battery staple", fastParams, false, false},
		{"params raised: rehash", "correct horse battery staple", Params{Memory: 512, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
		{"time raised: rehash", "correct horse battery staple", Params{Memory: 256, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}, true, true},
		{"wrong password still flags rehash", "nope", DefaultParams, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, rehash, err := VerifyPassword(h, NewPassword(tt.pw), tt.want)
			if err != nil || ok != tt.ok || rehash != tt.rehash {
				t.Errorf("VerifyPassword = %v, %v, %v; want %v, %v, nil", ok, rehash, err, tt.ok, tt.rehash)
			}
		})
	}
}

// TestKnownVector checks interoperability: the argon2id vector of the
// reference implementation's test.c (t=2, m=2^16, p=1, "password",
// "somesalt") verifies.
func TestKnownVector(t *testing.T) {
	const phc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	ok, _, err := VerifyPassword(phc, NewPassword("password"), DefaultParams)
	if err != nil || !ok {
		t.Errorf("reference vector: ok=%v err=%v", ok, err)
	}
}

func TestParsePHC(t *testing.T) {
	good := "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	h, err := ParsePHC(good)
	if err != nil {
		t.Fatal(err)
	}
	if h.Memory != 65536 || h.Time != 3 || h.Threads != 4 || h.SaltLen != 16 || h.KeyLen != 32 || h.String() != good {
		t.Errorf("parsed %+v, formats back as %q", h.Params, h.String())
	}
	bad := map[string]string{
		"empty":           "",
		"argon2i":         strings.Replace(good, "argon2id", "argon2i", 1),
		"bcrypt":          "$2b$12$abcdefghijklmnopqrstuu",
		"version 16":      strings.Replace(good, "v=19", "v=16", 1),
		"no version":      "$argon2id$m=65536,t=3,p=4$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		"missing p":       strings.Replace(good, ",p=4", "", 1),
		"repeated m":      strings.Replace(good, "t=3", "m=3", 1),
		"unknown param":   strings.Replace(good, "p=4", "x=4", 1),
		"zero time":       strings.Replace(good, "t=3", "t=0", 1),
		"zero threads":    strings.Replace(good, "p=4", "p=0", 1),
		"threads 256":     strings.Replace(good, "p=4", "p=256", 1),
		"huge memory":     strings.Replace(good, "m=65536", "m=4294967295", 1),
		"tiny memory":     strings.Replace(good, "m=65536", "m=8", 1),
		"huge time":       strings.Replace(good, "t=3", "t=1000", 1),
		"negative":        strings.Replace(good, "t=3", "t=-3", 1),
		"leading zero":    strings.Replace(good, "t=3", "t=03", 1),
		"plus sign":       strings.Replace(good, "t=3", "t=+3", 1),
		"padded salt":     strings.Replace(good, "c29tZXNhbHRzb21lc2FsdA", "c29tZXNhbHRzb21lc2FsdA==", 1),
		"short salt":      strings.Replace(good, "c29tZXNhbHRzb21lc2FsdA", "c29t", 1),
		"bad base64 hash": strings.Replace(good, "CTFh", "CT!h", 1),
		"short hash":      strings.Replace(good, "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc", "CTFhFdXPJO1a", 1),
		"extra field":     good + "$x",
		"no leading $":    good[1:],
		"space in params": strings.Replace(good, "t=3", "t= 3", 1),
	}
	for name, s := range bad {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePHC(s); !errors.Is(err, ErrBadHash) {
				t.Errorf("ParsePHC(%q) = %v, want ErrBadHash", s, err)
			}
			if ok, _, err := VerifyPassword(s, NewPassword("password"), DefaultParams); ok || err == nil {
				t.Errorf("VerifyPassword on a bad hash = %v, %v", ok, err)
			}
		})
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc")
	f.Add("$argon2id$v=19$m=256,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("error %v does not wrap ErrBadHash", err)
			}
			return
		}
		// Whatever parses stays within the bounds that make verifying it
		// affordable, and round-trips exactly.
		if h.Memory > maxMemory || h.Time > maxTime || h.Threads == 0 || len(h.Salt) < minSaltLen || len(h.Key) < minKeyLen {
			t.Fatalf("accepted out-of-bounds hash %+v", h.Params)
		}
		if h.String() != s {
			t.Fatalf("round trip: %q became %q", s, h.String())
		}
	})
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		pw, user, email string
		ok              bool
	}{
		{"grape lantern orbit fog", "dana", "dana@spa.example", true},
		{"ünïcödé-pässwörd-ok", "dana", "", true},
		{"short pw", "dana", "", false},
		{"elevenchars", "dana", "", false},
		{"twelve chars", "dana", "", true},
		{strings.Repeat("ab c", 256), "dana", "", true},        // 1024 bytes
		{strings.Repeat("ab c", 256) + "d", "dana", "", false}, // 1025
		{"password1234", "dana", "", false},
		{"Password1234!", "dana", "", false},
		{"qwertyuiopas", "dana", "", false},
		{"123456789012", "dana", "", false},
		{"correcthorsebatterystaple", "dana", "", false},
		{"Dr.Lee-is-the-best-2025", "dr.lee", "", false},
		{"my address is lee@spa.example", "x", "lee@spa.example", false},
		{"drlee-clinic-rocks-9", "x", "drlee@spa.example", false},
		{"aaaaaaaaaaaaaaaa", "dana", "", false},
		{"abababababababab", "dana", "", false},
		{"\xff\xfe invalid utf8 here", "dana", "", false},
	}
	for _, tt := range tests {
		err := DefaultPolicy.Check(NewPassword(tt.pw), tt.user, tt.email)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrWeakPassword)) {
			t.Errorf("Check(%q, %q, %q) = %v, want ok=%v", tt.pw, tt.user, tt.email, err, tt.ok)
		}
	}
	if len(commonPasswords) < 100 {
		t.Errorf("embedded common-password list has %d entries", len(commonPasswords))
	}
}

// BenchmarkHashPassword measures one hash with DefaultParams, which is the
// cost of one sign-in; b.ReportMetric adds ms/op.
func BenchmarkHashPassword(b *testing.B) {
	pw := NewPassword("grape lantern orbit fog")
	for b.Loop() {
		if _, err := HashPassword(pw, DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
}
