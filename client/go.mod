module github.com/imqtt/imqtt/client

go 1.26.0

require (
	github.com/eclipse/paho.mqtt.golang v1.5.1
	github.com/goccy/go-json v0.12.0
	github.com/imqtt/imqtt/wire v0.0.0-00010101000000-000000000000
	github.com/klauspost/compress v1.20.3
	golang.org/x/net v0.62.0
)

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	golang.org/x/sync v0.17.0 // indirect
)

// The protocol's types, from this checkout. The SDK needs nothing else of
// the repository: a bot that imports it gets neither the server nor its
// dependencies. Its tests against a real server are in e2e/sdk.
replace github.com/imqtt/imqtt/wire => ../wire
