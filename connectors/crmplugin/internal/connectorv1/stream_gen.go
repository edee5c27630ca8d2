package connectorv1

// The change-stream service has its own proto file and generator run, so
// it is generated apart from connector.proto (which it imports).
//go:generate protoc --plugin=protoc-gen-go=./protoc-gen-go.sh --plugin=protoc-gen-go-grpc=./protoc-gen-go-grpc.sh --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative stream.proto
