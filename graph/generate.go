package graph

// gqlgen reads gqlgen.yml from the repository root, so it runs from there.
//go:generate go tool -C .. gqlgen generate --config gqlgen.yml
