// Package jwtauth checks JSON Web Tokens minted by an operator's own login
// service (SPEC §14, docs/integration.md "External auth (JWT)"): with
// --jwt-key, such a token is a user's MQTT password and HTTP Bearer token.
//
// One key, one algorithm. The key file is either a PEM public key, whose
// type decides the only algorithm accepted (RSA: RS256, ECDSA P-256: ES256,
// Ed25519: EdDSA), or else an HMAC secret (HS256), at least 32 bytes once
// trimmed. A token of any other algorithm is refused before its signature
// is looked at, so neither "alg: none" nor an HS256 token signed with the
// bytes of the RSA public key (the algorithm-confusion attack) passes.
//
// A token must carry exp; nbf and iat are honoured when present, each with
// Leeway for clock skew; aud and iss are checked when configured. sub is the
// user ID (wire.ValidUser, not a reserved ID); the optional string claim
// device binds the token to one device.
//
// The library is github.com/golang-jwt/jwt/v5, weighed against
// github.com/lestrrat-go/jwx/v3: both are maintained and both check
// algorithms against the key. golang-jwt was already in go.mod (push signs
// APNs and FCM tokens with it), has no dependencies, and does only JWS
// verification, which is all this needs; jwx brings JWE, JWK sets and a
// larger surface to audit.
//
// Errors never carry the token or its claims: only a fixed reason, so
// callers may log them.
package jwtauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imqtt/imqtt/wire"
)

// The defaults of Options, taken by its zero values.
const (
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxLen bounds a token's length, checked before it is parsed.
	DefaultMaxLen = 8 << 10
)

// MinSecret is the shortest HS256 secret accepted: 256 bits, the hash's
// size (RFC 7518 §3.2 asks for a key at least that long).
const MinSecret = 32

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
const minRSABits = 2048

// ErrInvalid is what every refused token matches; its message says why
// in a fixed phrase, never with the token's content.
var ErrInvalid = errors.New("invalid JWT")

// Options configure a Verifier; zero values take defaults.
type Options struct {
	Audience string        // when set, aud must contain it
	Issuer   string        // when set, iss must equal it
	Leeway   time.Duration // default DefaultLeeway
	MaxLen   int           // bytes; default DefaultMaxLen
	Now      func() time.Time
}

// Claims are what a valid token says.
type Claims struct {
	User    string    // sub, in canonical form (wire.NormUser)
	Display string    // sub as given
	Device  string    // the device claim; "" if the token is for any device
	Expires time.Time // exp
}

// Verifier checks tokens against one key. It is safe for concurrent use.
type Verifier struct {
	alg    string
	key    any
	parser *jwt.Parser
	maxLen int
}

// Load reads the key file at path (see New).
func Load(path string, opts Options) (*Verifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwt key: %w", err)
	}
	v, err := New(raw, opts)
	if err != nil {
		return nil, fmt.Errorf("jwt key %s: %w", path, err)
	}
	return v, nil
}

// New returns a Verifier for key: the content of a PEM file holding a
// public key (PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE), or else an HMAC
// secret, trimmed of surrounding white space. A private key, an RSA key
// under 2048 bits, an ECDSA curve other than P-256 or a secret under
// MinSecret bytes is an error.
func New(key []byte, opts Options) (*Verifier, error) {
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.MaxLen <= 0 {
		opts.MaxLen = DefaultMaxLen
	}
	v := &Verifier{maxLen: opts.MaxLen}
	trimmed := bytes.TrimSpace(key)
	if bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		pub, err := parsePEM(trimmed)
		if err != nil {
			return nil, err
		}
		if v.alg, err = algOf(pub); err != nil {
			return nil, err
		}
		v.key = pub
	} else {
		if len(trimmed) < MinSecret {
			return nil, fmt.Errorf("an HS256 secret must be at least %d bytes (it has %d); or give a PEM public key", MinSecret, len(trimmed))
		}
		v.alg, v.key = jwt.SigningMethodHS256.Alg(), trimmed
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{v.alg}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(opts.Leeway),
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Now != nil {
		popts = append(popts, jwt.WithTimeFunc(opts.Now))
	}
	v.parser = jwt.NewParser(popts...)
	return v, nil
}

// Alg is the one algorithm the Verifier accepts: HS256, RS256, ES256 or EdDSA.
func (v *Verifier) Alg() string { return v.alg }

// Looks reports whether s has a JWT's shape: three dot-separated
// base64url segments, the first a JSON object ("eyJ" is the encoding of
// `{"`). It is cheap and says nothing of validity; login tokens (43
// base64url characters, no dots) never look like one.
func Looks(s string) bool {
	if !strings.HasPrefix(s, "eyJ") || strings.Count(s, ".") != 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// claims are a token's payload as parsed.
type claims struct {
	jwt.RegisteredClaims
	Device *string `json:"device,omitempty"`
}

// Verify checks token and returns its claims. device is the device the
// token is presented for ("" when the caller has none, as on HTTP): a
// token whose device claim is another is refused. Every refusal matches
// ErrInvalid.
func (v *Verifier) Verify(token, device string) (Claims, error) {
	if len(token) > v.maxLen {
		return Claims{}, refused("longer than %d bytes", v.maxLen)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, v.keyFor)
	if err != nil {
		return Claims{}, refused("%s", reason(err))
	}
	if c.ExpiresAt == nil { // the parser's WithExpirationRequired refused it already
		return Claims{}, refused("no exp")
	}
	user, ok := wire.NormUser(c.Subject)
	if !ok {
		return Claims{}, refused("sub is not a valid user ID")
	}
	if wire.ReservedUser(user) {
		return Claims{}, refused("sub is a reserved user ID")
	}
	out := Claims{User: user, Display: c.Subject, Expires: c.ExpiresAt.Time}
	if c.Device != nil {
		if !wire.ValidDevice(*c.Device) {
			return Claims{}, refused("device is not a valid device ID")
		}
		if device != "" && *c.Device != device {
			return Claims{}, refused("issued for another device")
		}
		out.Device = *c.Device
	}
	return out, nil
}

// keyFor hands the parser the key, for the one algorithm only (the
// parser's WithValidMethods has refused any other already: this is a
// second lock on the same door).
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	if t.Method.Alg() != v.alg {
		return nil, jwt.ErrTokenSignatureInvalid
	}
	return v.key, nil
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// reason is a fixed phrase for a parse error: golang-jwt's messages may
// quote the decoder's, which can quote the token.
func reason(err error) string {
	for _, r := range []struct {
		err    error
		phrase string
	}{
		{jwt.ErrTokenExpired, "expired"},
		{jwt.ErrTokenNotValidYet, "not valid yet"},
		{jwt.ErrTokenUsedBeforeIssued, "issued in the future"},
		{jwt.ErrTokenInvalidAudience, "wrong audience"},
		{jwt.ErrTokenInvalidIssuer, "wrong issuer"},
		{jwt.ErrTokenRequiredClaimMissing, "a required claim (exp, or aud/iss when configured) is missing"},
		{jwt.ErrTokenSignatureInvalid, "wrong signature or algorithm"},
		{jwt.ErrTokenUnverifiable, "wrong algorithm"},
		{jwt.ErrTokenMalformed, "malformed"},
		{jwt.ErrInvalidType, "a claim of the wrong type"},
	} {
		if errors.Is(err, r.err) {
			return r.phrase
		}
	}
	return "refused"
}

// parsePEM returns the public key of the first PEM block.
func parsePEM(data []byte) (any, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("starts like PEM but holds no PEM block")
	}
	switch block.Type {
	case "PUBLIC KEY":
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM public key: %w", err)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		pub, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM RSA public key: %w", err)
		}
		return pub, nil
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM certificate: %w", err)
		}
		return cert.PublicKey, nil
	}
	if strings.Contains(block.Type, "PRIVATE") {
		return nil, fmt.Errorf("PEM %s: give the public key; the private key stays with the service that mints tokens", block.Type)
	}
	return nil, fmt.Errorf("PEM %s: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
}

// algOf is the one algorithm a public key verifies.
func algOf(pub any) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key of %d bits: at least %d", k.N.BitLen(), minRSABits)
		}
		return jwt.SigningMethodRS256.Alg(), nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("ECDSA key on %s: ES256 wants P-256", k.Curve.Params().Name)
		}
		return jwt.SigningMethodES256.Alg(), nil
	case ed25519.PublicKey:
		return jwt.SigningMethodEdDSA.Alg(), nil
	}
	return "", fmt.Errorf("public key of type %T: want RSA, ECDSA P-256 or Ed25519", pub)
}
