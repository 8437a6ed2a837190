// Package deploy holds the deployment files of imqttd (Dockerfile,
// docker-compose with HAProxy, Kubernetes manifests, a systemd unit, a
// sample config) and, in its tests, the checks that keep them consistent
// with each other and with the flags of cmd/imqttd. See README.md.
package deploy
