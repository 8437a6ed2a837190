package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/imqtt/imqtt/wire"
)

// RegisterPush registers this device's push token (PUT
// /v1/devices/current/push): while the device has no live connection,
// messages to it become notifications through the provider. One per
// device; a second call replaces it, Logout removes it.
func (h *HTTP) RegisterPush(ctx context.Context, r wire.PushRegister) (wire.PushDevice, error) {
	var d wire.PushDevice
	if err := h.do(ctx, http.MethodPut, "/v1/devices/current/push", nil, r, &d); err != nil {
		return wire.PushDevice{}, fmt.Errorf("register push: %w", err)
	}
	return d, nil
}

// UnregisterPush removes the push registration of device ("" or
// "current": this one; else another device of this user).
func (h *HTTP) UnregisterPush(ctx context.Context, device string) error {
	if device == "" {
		device = "current"
	}
	if err := h.do(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(device)+"/push", nil, nil, nil); err != nil {
		return fmt.Errorf("unregister push: %w", err)
	}
	return nil
}

// PushDevices lists this user's push registrations (GET /v1/devices).
func (h *HTTP) PushDevices(ctx context.Context) (wire.PushDevices, error) {
	var ds wire.PushDevices
	if err := h.do(ctx, http.MethodGet, "/v1/devices", nil, nil, &ds); err != nil {
		return wire.PushDevices{}, fmt.Errorf("push devices: %w", err)
	}
	return ds, nil
}
