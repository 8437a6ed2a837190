# make run    — the server on the embedded store (./data)
# make test   — everything the tests need, installed and started, then every test
# make bench  — the testing.B benchmarks

.PHONY: run test bench build vet

run:
	go run ./cmd/imqttd

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./store/... ./chat/...

build:
	go build -o bin/ ./cmd/...

vet:
	go vet ./...
