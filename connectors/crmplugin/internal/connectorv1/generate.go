// Package connectorv1 holds the generated gRPC code of the crmsync.connector.v1
// protocol spoken between crmsync and connector plugin processes. Only
// connectors/crmplugin uses it; connector authors never see it.
package connectorv1

// protoc runs the generators pinned in go.mod through `go tool`, so a clean
// checkout needs only protoc itself (with its well-known types) on PATH.
//go:generate protoc --plugin=protoc-gen-go=./protoc-gen-go.sh --plugin=protoc-gen-go-grpc=./protoc-gen-go-grpc.sh --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative connector.proto
