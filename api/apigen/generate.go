// Package apigen holds the gin server interface, request and response types and the embedded
// specification generated from openapi.yaml by oapi-codegen. Do not edit apigen.gen.go; change
// openapi.yaml and run `go generate ./api/...`.
package apigen

//go:generate go tool oapi-codegen -config config.yaml ../../openapi.yaml
