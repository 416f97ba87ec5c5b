// Package patronus holds the API contract, openapi.yaml, for the binary to serve and validate
// requests against. The service itself lives in cmd/patronus and the packages beside this file.
package patronus

import _ "embed"

// OpenAPI is the text of openapi.yaml: the REST API's source of truth.
//
//go:embed openapi.yaml
var OpenAPI []byte
