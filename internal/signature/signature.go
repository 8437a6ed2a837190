// Package signature signs and verifies the requests imqtt POSTs to other
// services (the push webhook, SPEC §13, and the event webhooks, SPEC §14):
//
//	X-Imqtt-Timestamp: 1765069200
//	X-Imqtt-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// The timestamp is under the signature, so a receiver that checks its age
// (Verify's maxAge) cannot be sent an old request again later.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// The headers a signed request carries.
const (
	HeaderTimestamp = "X-Imqtt-Timestamp"
	HeaderSignature = "X-Imqtt-Signature"
)

// prefix names the scheme, so that another can be added beside it.
const prefix = "v1="

// Errors of Verify.
var (
	ErrMissing   = errors.New("signature: missing signature or timestamp")
	ErrMalformed = errors.New("signature: malformed signature or timestamp")
	ErrMismatch  = errors.New("signature: signature does not match")
	ErrExpired   = errors.New("signature: timestamp outside the allowed age")
)

// Sign returns the X-Imqtt-Signature value for body sent at ts (unix
// seconds, as in X-Imqtt-Timestamp): "v1=" and the hex HMAC-SHA256 with
// secret over ts + "." + body.
func Sign(secret []byte, ts int64, body []byte) string {
	return prefix + hex.EncodeToString(mac(secret, strconv.FormatInt(ts, 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks header (an X-Imqtt-Signature value) against body and ts
// (the X-Imqtt-Timestamp value as received) in constant time. With maxAge
// > 0 it also refuses a timestamp further than maxAge from now, either
// way (ErrExpired). The comparison is over the decoded MACs, so any case
// of hex is accepted.
func Verify(secret []byte, header, ts string, body []byte, maxAge time.Duration) error {
	return verifyAt(secret, header, ts, body, maxAge, time.Now())
}

func verifyAt(secret []byte, header, ts string, body []byte, maxAge time.Duration, now time.Time) error {
	if header == "" || ts == "" {
		return ErrMissing
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || !strings.HasPrefix(header, prefix) {
		return ErrMalformed
	}
	got, err := hex.DecodeString(header[len(prefix):])
	if err != nil || len(got) != sha256.Size {
		return ErrMalformed
	}
	if !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrMismatch
	}
	if maxAge > 0 {
		age := now.Sub(time.Unix(sec, 0))
		if age > maxAge || age < -maxAge {
			return ErrExpired
		}
	}
	return nil
}
