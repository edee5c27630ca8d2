// Package pubsub holds the Salesforce Pub/Sub API service definition
// (eventbus.v1.PubSub), vendored unchanged from Salesforce's public
// pub-sub-api repository with its CC0 licence (LICENSE), and the Go code
// generated from it. The Salesforce connector's change-stream client and
// sffake's Pub/Sub server use it; nothing outside connectors/salesforce does.
package pubsub

// protoc runs the generators pinned in go.mod through `go tool`; go_package
// is set by -M options so the vendored file stays byte-identical to upstream.
//go:generate protoc --plugin=protoc-gen-go=./protoc-gen-go.sh --plugin=protoc-gen-go-grpc=./protoc-gen-go-grpc.sh --go_out=. --go_opt=paths=source_relative --go_opt=Mpubsub_api.proto=github.com/crmsync/crmsync/connectors/salesforce/internal/pubsub;pubsub --go-grpc_out=. --go-grpc_opt=paths=source_relative --go-grpc_opt=Mpubsub_api.proto=github.com/crmsync/crmsync/connectors/salesforce/internal/pubsub;pubsub pubsub_api.proto
