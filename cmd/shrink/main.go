// Command shrink makes neural networks smaller and faster through declarative,
// version-controlled YAML recipes: a DAG of train, prune, quantize, qat, lowrank,
// distill and select stages over gorgonia graphs, with a safetensors checkpoint
// after every stage and nothing run twice.
package main

import (
	"os"
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
