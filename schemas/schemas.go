// Package schemas embeds the published JSON Schemas.
package schemas

import _ "embed"

// Recipe is recipe.schema.json: the recipe format, generated from the stage
// registry (go tool task generate rewrites it; TestSchemaInSync fails when it is stale).
//
//go:embed recipe.schema.json
var Recipe []byte
