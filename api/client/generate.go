// Package client is the Go client of the Patronus API, generated from openapi.yaml by
// oapi-codegen. Do not edit client.gen.go; change openapi.yaml and run `go generate ./api/...`.
package client

//go:generate go tool oapi-codegen -config config.yaml ../../openapi.yaml
