# make run    — the server on the embedded store (./data), with a generated admin token (printed in its log)
# make build  — bin/imqttd and bin/imqtt
# make test   — everything the tests need, installed and started, then every test
# make bench  — the testing.B benchmarks
# make bench-compare — imqttd against Mosquitto and bare mochi, one run (bench/run.sh; not part of make test)
# make docs   — re-render the message-path diagram docs/message-path.svg from its source (needs graphviz: apt-get install graphviz)

.PHONY: run test bench bench-compare build vet docs

run:
	go run ./cmd/imqttd --admin-token generate

test:
	./scripts/test.sh

bench:
	go test -run '^$$' -bench . -benchtime 2s ./store/... ./chat/...

bench-compare:
	./bench/run.sh

build:
	go build -buildvcs=auto -o bin/ ./cmd/...  # the revision for --version, whatever GOFLAGS says

vet:
	go vet ./...

docs:
	dot -Tsvg docs/message-path.dot -o docs/message-path.svg
