package config

import _ "embed"

// Example is the commented example configuration shipped with the module.
//
//go:embed example.yaml
var Example []byte
