#!/bin/sh
# Runs the protoc-gen-go-grpc pinned in go.mod (a protoc plugin must be an executable).
exec go tool protoc-gen-go-grpc "$@"
