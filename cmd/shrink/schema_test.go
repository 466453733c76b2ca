package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/shrink-ml/shrink/pipeline"
	"github.com/shrink-ml/shrink/stages"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestSchemaInSync keeps schemas/recipe.schema.json equal to the schema the stage
// registry generates: adding a key to a stage without regenerating fails here.
// Regenerate with: go test ./cmd/shrink -run TestSchemaInSync -update
func TestSchemaInSync(t *testing.T) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(pipeline.GenerateSchema(stages.Default)); err != nil {
		t.Fatal(err)
	}
	want := buf.Bytes()
	const path = "../../schemas/recipe.schema.json"
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the stage registry: run go test ./cmd/shrink -run TestSchemaInSync -update", path)
	}
}

// TestReferenceInSync keeps docs/REFERENCE.md, the key reference rendered from
// the schema, up to date.
func TestReferenceInSync(t *testing.T) {
	var buf bytes.Buffer
	writeReference(&buf, pipeline.GenerateSchema(stages.Default))
	const path = "../../docs/REFERENCE.md"
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("%s is out of date: run go test ./cmd/shrink -run TestReferenceInSync -update", path)
	}
}
