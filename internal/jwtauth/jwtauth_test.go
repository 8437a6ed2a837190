package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// now is the tests' clock.
var now = time.Date(2026, 12, 7, 4, 0, 0, 0, time.UTC)

// keySet is one key type: the file imqttd is given, and how to sign.
type keySet struct {
	name   string
	file   []byte
	method jwt.SigningMethod
	signer any    // the key that signs
	pub    []byte // the public key's PEM (nil for HMAC)
}

var secret = []byte("0123456789abcdef0123456789abcdef-hs256")

func pemOf(t testing.TB, typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkix_(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pemOf(t, "PUBLIC KEY", der)
}

func keySets(t testing.TB) []keySet {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	epub, epriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rpem, epem, dpem := pkix_(t, &rk.PublicKey), pkix_(t, &ek.PublicKey), pkix_(t, epub)
	return []keySet{
		// The secret with a trailing newline, as a file written by echo has.
		{"HS256", append(append([]byte{}, secret...), '\n'), jwt.SigningMethodHS256, secret, nil},
		{"RS256", rpem, jwt.SigningMethodRS256, rk, rpem},
		{"ES256", epem, jwt.SigningMethodES256, ek, epem},
		{"EdDSA", dpem, jwt.SigningMethodEdDSA, epriv, dpem},
	}
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func good() jwt.MapClaims {
	return jwt.MapClaims{"sub": "Alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func verifier(t testing.TB, file []byte, opts Options) *Verifier {
	t.Helper()
	opts.Now = func() time.Time { return now }
	v, err := New(file, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// unsigned is an "alg: none" token of c.
func unsigned(t testing.TB, c jwt.MapClaims) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestKeyTypes: each key type accepts its own tokens, with and without a
// device, and names its one algorithm.
func TestKeyTypes(t *testing.T) {
	for _, ks := range keySets(t) {
		t.Run(ks.name, func(t *testing.T) {
			v := verifier(t, ks.file, Options{})
			if v.Alg() != ks.method.Alg() {
				t.Fatalf("alg %s, want %s", v.Alg(), ks.method.Alg())
			}
			tok := sign(t, ks.method, ks.signer, good())
			if !Looks(tok) {
				t.Fatalf("Looks(%s) false", tok)
			}
			c, err := v.Verify(tok, "phone")
			if err != nil {
				t.Fatal(err)
			}
			if c.User != "alice" || c.Display != "Alice" || c.Device != "" || !c.Expires.Equal(now.Add(time.Hour)) {
				t.Fatalf("claims %+v", c)
			}
			c, err = v.Verify(sign(t, ks.method, ks.signer, with(good(), "device", "phone")), "phone")
			if err != nil || c.Device != "phone" {
				t.Fatalf("device token: %+v %v", c, err)
			}
			if _, err := v.Verify(sign(t, ks.method, ks.signer, with(good(), "device", "phone")), ""); err != nil {
				t.Fatalf("device token without a device to match (HTTP): %v", err)
			}
		})
	}
}

// TestRefused: every defect the issue names, for every key type, is
// ErrInvalid.
func TestRefused(t *testing.T) {
	sets := keySets(t)
	other := keySets(t) // the same types, other keys
	for i, ks := range sets {
		t.Run(ks.name, func(t *testing.T) {
			v := verifier(t, ks.file, Options{})
			cases := map[string]string{
				"alg none":          unsigned(t, good()),
				"alg none, no sig":  strings.TrimSuffix(unsigned(t, good()), "."),
				"wrong key":         sign(t, other[i].method, other[i].signer, good()),
				"expired":           sign(t, ks.method, ks.signer, with(good(), "exp", now.Add(-time.Minute).Unix())),
				"not yet valid":     sign(t, ks.method, ks.signer, with(good(), "nbf", now.Add(time.Minute).Unix())),
				"issued in future":  sign(t, ks.method, ks.signer, with(good(), "iat", now.Add(time.Minute).Unix())),
				"no exp":            sign(t, ks.method, ks.signer, with(good(), "exp", nil)),
				"exp not a number":  sign(t, ks.method, ks.signer, with(good(), "exp", "tomorrow")),
				"no sub":            sign(t, ks.method, ks.signer, with(good(), "sub", nil)),
				"empty sub":         sign(t, ks.method, ks.signer, with(good(), "sub", "")),
				"invalid sub":       sign(t, ks.method, ks.signer, with(good(), "sub", "al ice")),
				"dot sub":           sign(t, ks.method, ks.signer, with(good(), "sub", ".alice")),
				"reserved sub":      sign(t, ks.method, ks.signer, with(good(), "sub", "System")),
				"other device":      sign(t, ks.method, ks.signer, with(good(), "device", "laptop")),
				"invalid device":    sign(t, ks.method, ks.signer, with(good(), "device", "a/b")),
				"device not string": sign(t, ks.method, ks.signer, with(good(), "device", 7)),
				"garbage":           "eyJhbGciOi.garbage.garbage",
				"two segments":      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0",
				"empty":             "",
				"too long":          sign(t, ks.method, ks.signer, with(good(), "pad", strings.Repeat("x", DefaultMaxLen))),
			}
			// Another algorithm of the same family, signed with the same key.
			switch ks.name {
			case "HS256":
				cases["wrong key"] = sign(t, ks.method, []byte("another-secret-0123456789abcdef0123"), good())
				cases["HS384, same secret"] = sign(t, jwt.SigningMethodHS384, secret, good())
				cases["HS512, same secret"] = sign(t, jwt.SigningMethodHS512, secret, good())
			case "RS256":
				cases["RS384, same key"] = sign(t, jwt.SigningMethodRS384, ks.signer, good())
				cases["PS256, same key"] = sign(t, jwt.SigningMethodPS256, ks.signer, good())
			}
			if ks.pub != nil {
				// The classic confusion: an HS256 token whose "secret" is the
				// public key's file, which anyone may have.
				cases["HS256 with the public key's bytes"] = sign(t, jwt.SigningMethodHS256, ks.pub, good())
				cases["HS256 with the public key's DER"] = sign(t, jwt.SigningMethodHS256, derOf(t, ks.pub), good())
			}
			for name, tok := range cases {
				c, err := v.Verify(tok, "phone")
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("%s: accepted (%+v, %v)", name, c, err)
				}
			}
		})
	}
}

func derOf(t testing.TB, p []byte) []byte {
	b, _ := pem.Decode(p)
	return b.Bytes
}

// TestLeeway: exp, nbf and iat allow DefaultLeeway of clock skew, no more.
func TestLeeway(t *testing.T) {
	ks := keySets(t)[0]
	v := verifier(t, ks.file, Options{})
	in := DefaultLeeway - time.Second
	out := DefaultLeeway + time.Second
	for name, c := range map[string]jwt.MapClaims{
		"exp just past":    with(good(), "exp", now.Add(-in).Unix()),
		"nbf just ahead":   with(good(), "nbf", now.Add(in).Unix()),
		"iat just ahead":   with(good(), "iat", now.Add(in).Unix()),
		"nbf in the past":  with(good(), "nbf", now.Add(-time.Hour).Unix()),
		"no iat":           with(good(), "iat", nil),
		"unknown claims":   with(good(), "roles", []string{"x"}, "jti", "abc"),
		"fractional times": with(good(), "exp", float64(now.Add(time.Hour).Unix())+0.5),
	} {
		if _, err := v.Verify(sign(t, ks.method, ks.signer, c), ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, c := range map[string]jwt.MapClaims{
		"exp past leeway": with(good(), "exp", now.Add(-out).Unix()),
		"nbf past leeway": with(good(), "nbf", now.Add(out).Unix()),
		"iat past leeway": with(good(), "iat", now.Add(out).Unix()),
	} {
		if _, err := v.Verify(sign(t, ks.method, ks.signer, c), ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

// TestAudienceIssuer: aud and iss are checked when configured, and only then.
func TestAudienceIssuer(t *testing.T) {
	ks := keySets(t)[0]
	tok := func(kv ...any) string { return sign(t, ks.method, ks.signer, with(good(), kv...)) }
	open := verifier(t, ks.file, Options{})
	if _, err := open.Verify(tok("aud", "other", "iss", "someone"), ""); err != nil {
		t.Fatalf("unconfigured aud/iss checked: %v", err)
	}
	v := verifier(t, ks.file, Options{Audience: "imqtt", Issuer: "https://login.example"})
	for name, s := range map[string]string{
		"both":          tok("aud", "imqtt", "iss", "https://login.example"),
		"aud in a list": tok("aud", []string{"other", "imqtt"}, "iss", "https://login.example"),
	} {
		if _, err := v.Verify(s, ""); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, s := range map[string]string{
		"wrong aud":  tok("aud", "other", "iss", "https://login.example"),
		"no aud":     tok("iss", "https://login.example"),
		"wrong iss":  tok("aud", "imqtt", "iss", "https://evil.example"),
		"no iss":     tok("aud", "imqtt"),
		"aud in iss": tok("aud", "https://login.example", "iss", "imqtt"),
	} {
		if _, err := v.Verify(s, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}

// TestErrorsQuoteNothing: a refusal's message holds no part of the token.
func TestErrorsQuoteNothing(t *testing.T) {
	ks := keySets(t)[0]
	v := verifier(t, ks.file, Options{})
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"SECRETUSER","exp":"SECRETEXP"`))
	for _, tok := range []string{
		"eyJhbGciOiJIUzI1NiJ9." + payload + ".c2ln",
		sign(t, ks.method, ks.signer, with(good(), "sub", "SECRET USER")),
		sign(t, ks.method, []byte("SECRET-other-key-0123456789abcdef"), with(good(), "sub", "secretuser")),
	} {
		_, err := v.Verify(tok, "")
		if err == nil || strings.Contains(strings.ToLower(err.Error()), "secret") {
			t.Errorf("error %v", err)
		}
	}
}

// TestKeyFiles: what New accepts as a key and what it refuses at start.
func TestKeyFiles(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(ek)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "login"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &rk.PublicKey, rk)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		file []byte
		alg  string // "": refused
	}{
		"32-byte secret":         {[]byte(strings.Repeat("k", 32)), "HS256"},
		"31-byte secret":         {[]byte(strings.Repeat("k", 31)), ""},
		"short secret, padded":   {[]byte("  " + strings.Repeat("k", 31) + "\n\n"), ""},
		"empty":                  {nil, ""},
		"RSA PKIX":               {pkix_(t, &rk.PublicKey), "RS256"},
		"RSA PKCS1":              {pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&rk.PublicKey)), "RS256"},
		"RSA certificate":        {pemOf(t, "CERTIFICATE", certDER), "RS256"},
		"RSA 1024":               {pkix_(t, &small.PublicKey), ""},
		"ECDSA P-384":            {pkix_(t, &p384.PublicKey), ""},
		"private key":            {pemOf(t, "PRIVATE KEY", privDER), ""},
		"RSA private key":        {pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), ""},
		"broken PEM":             {[]byte("-----BEGIN PUBLIC KEY-----\nnot base64\n"), ""},
		"PEM of junk":            {pemOf(t, "PUBLIC KEY", []byte("junk")), ""},
		"PEM of another type":    {pemOf(t, "EC PARAMETERS", []byte{1, 2}), ""},
		"indented PEM (trimmed)": {append([]byte("\n  "), pkix_(t, &ek.PublicKey)...), "ES256"},
	} {
		v, err := New(c.file, Options{})
		switch {
		case c.alg == "" && err == nil:
			t.Errorf("%s: accepted as %s", name, v.Alg())
		case c.alg != "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.alg != "" && v.Alg() != c.alg:
			t.Errorf("%s: %s, want %s", name, v.Alg(), c.alg)
		}
	}
	// Load reads a file, and names it in its errors.
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	if err := os.WriteFile(path, []byte("tiny-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, Options{}); err == nil || !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), "tiny-secret") {
		t.Errorf("Load of a short secret (the error names the file, never the secret): %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing"), Options{}); err == nil {
		t.Error("Load of a missing file")
	}
}

// TestLooks: the cheap shape test tells JWTs from login tokens and passwords.
func TestLooks(t *testing.T) {
	for s, want := range map[string]bool{
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln":   true,
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.":       true,
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0":        false,
		"eyJ.a.b.c":                                   false,
		"eyJ a.b.c":                                   false,
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ": false, // a login token's shape
		"hunter2": false,
		"":        false,
	} {
		if Looks(s) != want {
			t.Errorf("Looks(%q) = %v", s, !want)
		}
	}
}

// BenchmarkVerify: the cost of a check per key type.
func BenchmarkVerify(b *testing.B) {
	for _, ks := range keySets(b) {
		b.Run("alg="+ks.name, func(b *testing.B) {
			v := verifier(b, ks.file, Options{})
			tok := sign(b, ks.method, ks.signer, with(good(), "device", "phone"))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(tok, "phone"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
