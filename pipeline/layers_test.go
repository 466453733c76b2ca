package pipeline

// Recipes with model sections expand their layers through the layer types
// package nn registers.
import _ "github.com/shrink-ml/shrink/nn"
