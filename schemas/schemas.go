// Package schemas embeds the published JSON Schemas.
package schemas

import _ "embed"

// Recipe is recipe.schema.json: the recipe format, generated from the stage
// registry (go generate ./schemas; a test keeps it in sync).
//
//go:embed recipe.schema.json
var Recipe []byte
