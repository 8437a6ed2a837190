package wire

// Push providers (PushRegister.Provider).
const (
	ProviderAPNs    = "apns"
	ProviderFCM     = "fcm"
	ProviderWebhook = "webhook"
)

// Push registration refusals (HTTP 400).
const (
	CodeBadProvider = "bad_provider" // not apns, fcm or webhook, or not configured on the server
	CodeBadToken    = "bad_token"    // empty, too long or malformed for its provider
	CodeTokenInUse  = "token_in_use" // another user's device holds the token (it logs out first)
	// CodeTooManyDevices (409): the user has as many push registrations
	// as a user may (a new device's is refused; its own can be replaced).
	CodeTooManyDevices = "too_many_devices"
)

// MaxPushToken bounds a push token (APNs: 64 hex digits today; FCM: about
// 160 characters).
const MaxPushToken = 512

// PushRegister is the body of PUT /v1/devices/current/push.
type PushRegister struct {
	Provider string `json:"provider"`
	Token    string `json:"token"`
	Topic    string `json:"topic,omitempty"`
	Sandbox  bool   `json:"sandbox,omitempty"`
}

// PushDevice is a device's push registration as the API shows it: the
// token is shown only to its own user, and to operators cut short.
type PushDevice struct {
	User     string `json:"user,omitempty"`
	Device   string `json:"device"`
	Provider string `json:"provider"`
	Token    string `json:"token"`
	Topic    string `json:"topic,omitempty"`
	Sandbox  bool   `json:"sandbox,omitempty"`
	Created  int64  `json:"created"`
	LastPush int64  `json:"last_push,omitempty"`
}

// PushDevices lists push registrations (GET /v1/devices,
// GET /v1/admin/users/{user}/push).
type PushDevices struct {
	Devices []PushDevice `json:"devices"`
}
