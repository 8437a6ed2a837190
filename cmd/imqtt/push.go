package main

import (
	"context"

	"github.com/imqtt/imqtt/wire"
)

// cmdPush: imqtt push [register --provider P --token T [--topic B] [--sandbox] | unregister [DEVICE]]
func cmdPush(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("push")
	provider := fs.String("provider", "", "register: apns, fcm or webhook")
	token := fs.String("token", "", "register: the device's push token")
	topic := fs.String("topic", "", "register: APNs bundle ID, if not the server's")
	sandbox := fs.Bool("sandbox", false, "register: APNs development environment")
	pos, err := c.parse(fs, args, 0, 2)
	if err != nil {
		return err
	}
	h, _, err := c.api()
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		ds, err := h.PushDevices(ctx)
		if err != nil {
			return err
		}
		return c.printJSON(ds)
	}
	switch {
	case pos[0] == "register" && len(pos) == 1:
		if *provider == "" || *token == "" {
			return usagef("push register --provider apns|fcm|webhook --token TOKEN [--topic BUNDLE] [--sandbox]")
		}
		d, err := h.RegisterPush(ctx, wire.PushRegister{Provider: *provider, Token: *token, Topic: *topic, Sandbox: *sandbox})
		if err != nil {
			return err
		}
		return c.printJSON(d)
	case pos[0] == "unregister":
		device := ""
		if len(pos) == 2 {
			device = pos[1]
		}
		return h.UnregisterPush(ctx, device)
	}
	return usagef("push [register --provider P --token T | unregister [DEVICE]]")
}
