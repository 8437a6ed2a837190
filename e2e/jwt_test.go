package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/imqtt/imqtt/internal/daemon"
	"github.com/imqtt/imqtt/internal/testserver"
	"github.com/imqtt/imqtt/internal/wait"
	"github.com/imqtt/imqtt/wire"
)

// jwtIssuer mints tokens as an operator's login service would, with an
// ES256 key whose public half imqttd is given.
type jwtIssuer struct {
	key     *ecdsa.PrivateKey
	pubFile string
	pubPEM  []byte
}

func newJWTIssuer(t *testing.T) *jwtIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	iss := &jwtIssuer{key: key, pubFile: filepath.Join(t.TempDir(), "jwt.pem"),
		pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})}
	if err := os.WriteFile(iss.pubFile, iss.pubPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return iss
}

// mint signs the claims sub, aud "imqtt", exp in ten minutes, then kv.
func (i *jwtIssuer) mint(t *testing.T, sub string, kv ...any) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "aud": "imqtt", "exp": time.Now().Add(10 * time.Minute).Unix(), "iat": time.Now().Unix()}
	for k := 0; k < len(kv); k += 2 {
		c[kv[k].(string)] = kv[k+1]
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, c).SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const jwtAdmin = "jwt-test-admin-token"

// TestJWTExternalAuth: with --jwt-key, real MQTT clients (mosquitto) log in
// with a JWT as their password, and HTTP clients with it as their Bearer
// token; the user exists from that first use. Every kind of bad JWT is
// refused like bad credentials (CONNACK 0x86, 3.1.1 code 4; HTTP 401), and
// a banned user's valid JWT is refused like a banned user's token.
func TestJWTExternalAuth(t *testing.T) {
	pub := requireTool(t, "mosquitto_pub")
	sub := requireTool(t, "mosquitto_sub")
	rr := requireTool(t, "mosquitto_rr")
	iss := newJWTIssuer(t)
	s := testserver.Start(t, func(c *daemon.Config) {
		c.JWTKey, c.JWTAudience, c.AdminToken = iss.pubFile, "imqtt", jwtAdmin
	})
	host, port := hostPort(s.MQTT)
	bobTok := account(t, s, "bob", "cli") // imqtt's own accounts and tokens keep working beside JWTs
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Before its first JWT, alice does not exist: nobody can write to her.
	var e wire.Error
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-0", To: "alice", Type: "text", Body: "anyone?"}, &e); code < 400 {
		t.Fatalf("send to a user before its first JWT: %d", code)
	}

	// bob listens with mosquitto_sub (3.1.1, his login token).
	subCmd := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv311", "-i", "bob/cli", "-u", "bob", "-P", bobTok,
		"-q", "1", "-t", wire.InboxTopic("bob"), "-C", "1")
	var subOut bytes.Buffer
	subCmd.Stdout, subCmd.Stderr = &subOut, &subOut
	if err := subCmd.Start(); err != nil {
		t.Fatal(err)
	}
	wait.For(t, "mosquitto_sub subscribed", 10*time.Second, func() bool { return subscribed(s, "bob/cli", wire.InboxTopic("bob")) })

	// alice, new, sends with mosquitto_rr (MQTT 5), her JWT as the
	// password: the ack comes back on her device topic.
	aliceJWT := iss.mint(t, "alice", "device", "cli")
	msg := `{"cmid":"a-1","to":"bob","type":"text","body":"signed in by JWT"}`
	out, err := exec.CommandContext(ctx, rr, "-h", host, "-p", port, "-i", "alice/cli", "-u", "alice", "-P", aliceJWT,
		"-q", "1", "-t", wire.TopicSend, "-e", wire.DeviceTopic("alice", "cli"), "-m", msg, "-W", "10").CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_rr with a JWT: %v %s", err, out)
	}
	var ack wire.Ack
	mustUnmarshal(t, bytes.TrimSpace(out), &ack)
	if ack.Kind != "ack" || ack.CMID != "a-1" || ack.ID == "" || ack.Ver == 0 {
		t.Fatalf("ack %s", out)
	}
	if err := subCmd.Wait(); err != nil {
		t.Fatalf("mosquitto_sub: %v %s", err, subOut.Bytes())
	}
	var got wire.Msg
	mustUnmarshal(t, bytes.TrimSpace(subOut.Bytes()), &got)
	if got.From != "alice" || got.Body != "signed in by JWT" {
		t.Fatalf("bob got %+v", got)
	}
	// mosquitto_pub with a JWT that names no device opens any device of hers.
	if b, err := exec.CommandContext(ctx, pub, "-h", host, "-p", port, "-V", "mqttv311", "-i", "alice/laptop", "-u", "alice", "-P", iss.mint(t, "alice"),
		"-q", "1", "-t", wire.TopicSend, "-m", `{"cmid":"a-2","to":"bob","type":"text","body":"from the laptop"}`).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub with a JWT: %v %s", err, b)
	}

	// The same JWT is her Bearer token on HTTP: the message is stored on
	// her side.
	var hist wire.History
	wait.For(t, "both of alice's sends stored", 10*time.Second, func() bool {
		code := httpJSON(t, "GET", s.HTTP+"/v1/conversations/bob/messages", aliceJWT, nil, &hist)
		return code == 200 && len(hist.Messages) == 2
	})
	// She exists now: bob can write to her.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-1", To: "alice", Type: "text", Body: "welcome"}, nil); code != 200 {
		t.Fatalf("send to alice after her first JWT: %d", code)
	}
	// A user's first use may be HTTP: carol appears by calling the API.
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", iss.mint(t, "Carol"), nil, nil); code != 200 {
		t.Fatalf("carol's first call: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-2", To: "carol", Type: "text", Body: "hi"}, nil); code != 200 {
		t.Fatalf("send to carol after her first JWT: %d", code)
	}
	// A passwordless account is not opened by a password.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/sessions", "", wire.Login{User: "carol", Password: "secret-carol", Device: "x"}, nil); code != 401 {
		t.Fatalf("password login of a JWT user: %d", code)
	}
	// A user JWT is not an admin credential.
	if code := httpJSON(t, "GET", s.HTTP+"/v1/admin/bans", aliceJWT, nil, nil); code != 403 {
		t.Fatalf("JWT on the admin API: %d", code)
	}

	// Bad JWTs, each refused like a wrong password.
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signWith := func(m jwt.SigningMethod, key any, c jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "aud": "imqtt", "exp": time.Now().Add(time.Hour).Unix()}
	}
	expired := good()
	expired["exp"] = time.Now().Add(-time.Hour).Unix()
	early := good()
	early["nbf"] = time.Now().Add(time.Hour).Unix()
	noExp := good()
	delete(noExp, "exp")
	wrongAud := good()
	wrongAud["aud"] = "another-service"
	bad := map[string]string{
		"forged (another key)":      signWith(jwt.SigningMethodES256, other, good()),
		"expired":                   signWith(jwt.SigningMethodES256, iss.key, expired),
		"not yet valid":             signWith(jwt.SigningMethodES256, iss.key, early),
		"no exp":                    signWith(jwt.SigningMethodES256, iss.key, noExp),
		"wrong audience":            signWith(jwt.SigningMethodES256, iss.key, wrongAud),
		"alg none":                  signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good()),
		"HS256 with the public key": signWith(jwt.SigningMethodHS256, iss.pubPEM, good()),
		"another device":            iss.mint(t, "alice", "device", "phone"),
		"another user":              iss.mint(t, "bob"),
		"garbage":                   "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.AAAA",
	}
	for name, tok := range bad {
		for _, v := range []struct{ version, want string }{{"mqttv311", "bad user name or password"}, {"mqttv5", "Bad User Name or Password"}} {
			b, err := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", v.version, "-i", "alice/cli", "-u", "alice", "-P", tok,
				"-t", wire.InboxTopic("alice"), "-C", "1", "-W", "10").CombinedOutput()
			if err == nil || !strings.Contains(string(b), v.want) {
				t.Errorf("%s over %s: exit %v, output %q", name, v.version, err, b)
			}
		}
		if name == "another device" || name == "another user" {
			continue // valid JWTs on HTTP, which has no device or user to match
		}
		var e wire.Error
		if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", tok, nil, &e); code != http.StatusUnauthorized || e.Code != wire.CodeUnauthorized {
			t.Errorf("%s over HTTP: %d %+v", name, code, e)
		}
	}

	// A ban refuses a valid JWT as it refuses a token.
	if code := httpJSON(t, "POST", s.HTTP+"/v1/admin/bans", jwtAdmin, map[string]any{"user": "alice", "reason": "spam"}, nil); code != 201 {
		t.Fatalf("ban: %d", code)
	}
	b, err := exec.CommandContext(ctx, sub, "-h", host, "-p", port, "-V", "mqttv5", "-i", "alice/cli", "-u", "alice", "-P", iss.mint(t, "alice"),
		"-t", wire.InboxTopic("alice"), "-C", "1", "-W", "10").CombinedOutput()
	if err == nil || !strings.Contains(strings.ToLower(string(b)), "banned") {
		t.Errorf("banned user's JWT over MQTT: exit %v, output %q", err, b)
	}
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", iss.mint(t, "alice"), nil, nil); code != http.StatusForbidden {
		t.Errorf("banned user's JWT over HTTP: %d", code)
	}
	raw, _ := json.Marshal(hist.Messages)
	if strings.Count(string(raw), `"from":"alice"`) != 2 {
		t.Errorf("alice's stored messages: %s", raw)
	}
}

// TestSignupClosed: with --signup closed, POST /v1/users is 403
// signup_closed; existing users still log in, and JWTs still create users.
func TestSignupClosed(t *testing.T) {
	open := testserver.Start(t)
	account(t, open, "bob", "cli")
	open.Stop(t)
	iss := newJWTIssuer(t)
	s := testserver.Start(t, func(c *daemon.Config) {
		c.DataDir, c.Signup, c.JWTKey = open.Dir, "closed", iss.pubFile
	})
	var e wire.Error
	if code := httpJSON(t, "POST", s.HTTP+"/v1/users", "", wire.Register{User: "mallory", Password: "secret-mallory"}, &e); code != http.StatusForbidden || e.Code != wire.CodeSignupClosed {
		t.Fatalf("sign-up while closed: %d %+v", code, e)
	}
	bobTok := login(t, s, "bob", "cli")
	if code := httpJSON(t, "GET", s.HTTP+"/v1/conversations", iss.mint(t, "dave"), nil, nil); code != 200 {
		t.Fatalf("a JWT's first use while sign-up is closed: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-1", To: "dave", Type: "text", Body: "hi"}, nil); code != 200 {
		t.Fatalf("send to dave: %d", code)
	}
	if code := httpJSON(t, "POST", s.HTTP+"/v1/messages", bobTok, wire.Send{CMID: "b-2", To: "mallory", Type: "text", Body: "hi"}, nil); code < 400 {
		t.Fatalf("mallory exists after a closed sign-up: %d", code)
	}
}
