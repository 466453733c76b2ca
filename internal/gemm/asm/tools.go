//go:build tools

// This file only keeps avo, which the ignored generators (gen.go here and in
// internal/vec/asm) import, among the module's requirements: go mod tidy reads
// every build tag but "ignore".
package main

import _ "github.com/mmcloughlin/avo/build"
