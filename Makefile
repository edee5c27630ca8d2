# crmsync developer commands. `make test` is what CI runs.
.PHONY: test generate build vet

# Start a throwaway PostgreSQL, vet, check generated code, run all tests
# (race detector) on SQLite and PostgreSQL, then remove the database.
test:
	scripts/test.sh

# Regenerate gqlgen and protobuf code after changing graph/schema or protos.
generate:
	go generate ./...

build:
	go build -o bin/crmsync ./cmd/crmsync

vet:
	go vet ./...
