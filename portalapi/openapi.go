package portalapi

import _ "embed"

// OpenAPI is the API's OpenAPI 3 description (openapi.yaml).
//
//go:embed openapi.yaml
var OpenAPI []byte
