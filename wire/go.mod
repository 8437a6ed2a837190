module github.com/imqtt/imqtt/wire

go 1.26.0

require github.com/goccy/go-json v0.12.0

require github.com/rivo/uniseg v0.4.7
