package checkpoint_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/shrink-ml/shrink/checkpoint"
)

func Example() {
	dir, err := os.MkdirTemp("", "checkpoint-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.safetensors")

	f := &checkpoint.File{Metadata: map[string]string{"stage": "quantize"}}
	f.Set(checkpoint.F32("fc1.weight", []int{2, 3}, []float32{1, 2, 3, 4, 5, 6}))
	f.Set(checkpoint.I8("fc1.weight_q", []int{2, 3}, []int8{-1, 0, 1, 2, 3, 4}))
	sum, err := checkpoint.WriteFile(path, f)
	if err != nil {
		log.Fatal(err)
	}
	again, err := checkpoint.Digest(path)
	if err != nil {
		log.Fatal(err)
	}

	g, err := checkpoint.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	w, _ := g.Get("fc1.weight")
	vals, err := w.Float32s()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(g.Names(), g.Metadata["stage"])
	fmt.Println(w.DType, w.Shape, w.NumElements(), vals)
	fmt.Println(sum == again)
	// Output:
	// [fc1.weight fc1.weight_q] quantize
	// F32 [2 3] 6 [1 2 3 4 5 6]
	// true
}
