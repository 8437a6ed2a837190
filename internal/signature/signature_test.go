package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSign checks Sign against an HMAC computed here from SPEC §14's
// definition, so a change of the signed string (the ".", the order) fails.
func TestSign(t *testing.T) {
	secret, body, ts := []byte("s3cret"), []byte(`{"a":1}`), int64(1765069200)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("1765069200.{\"a\":1}"))
	want := "v1=" + hex.EncodeToString(m.Sum(nil))
	if got := Sign(secret, ts, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"a":1}`)
	now := time.Unix(1765069200, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	good := Sign(secret, now.Unix(), body)
	old := strconv.FormatInt(now.Add(-10*time.Minute).Unix(), 10)
	future := strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10)
	cases := []struct {
		name       string
		secret     []byte
		header, ts string
		body       []byte
		maxAge     time.Duration
		want       error
	}{
		{"good", secret, good, ts, body, time.Minute, nil},
		{"good upper-case hex", secret, "v1=" + strings.ToUpper(good[3:]), ts, body, time.Minute, nil},
		{"no age check", secret, Sign(secret, now.Add(-10*time.Minute).Unix(), body), old, body, 0, nil},
		{"missing header", secret, "", ts, body, time.Minute, ErrMissing},
		{"missing ts", secret, good, "", body, time.Minute, ErrMissing},
		{"bad ts", secret, good, "yesterday", body, time.Minute, ErrMalformed},
		{"other scheme", secret, "v0=" + good[3:], ts, body, time.Minute, ErrMalformed},
		{"not hex", secret, "v1=zz", ts, body, time.Minute, ErrMalformed},
		{"short", secret, good[:20], ts, body, time.Minute, ErrMalformed},
		{"other secret", []byte("other"), good, ts, body, time.Minute, ErrMismatch},
		{"other body", secret, good, ts, []byte(`{"a":2}`), time.Minute, ErrMismatch},
		{"other ts", secret, good, old, body, time.Minute, ErrMismatch},
		{"too old", secret, Sign(secret, now.Add(-10*time.Minute).Unix(), body), old, body, time.Minute, ErrExpired},
		{"too new", secret, Sign(secret, now.Add(10*time.Minute).Unix(), body), future, body, time.Minute, ErrExpired},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := verifyAt(c.secret, c.header, c.ts, c.body, c.maxAge, now); !errors.Is(err, c.want) {
				t.Fatalf("verify = %v, want %v", err, c.want)
			}
		})
	}
}

// TestVerifyNow: the exported Verify takes the real clock.
func TestVerifyNow(t *testing.T) {
	now := time.Now().Unix()
	body := []byte("x")
	if err := Verify([]byte("k"), Sign([]byte("k"), now, body), strconv.FormatInt(now, 10), body, time.Minute); err != nil {
		t.Fatal(err)
	}
}
