package infer_test

import (
	"fmt"
	"log"

	"github.com/shrink-ml/shrink/infer"
)

// Load a checkpoint (here the low-rank stage of a small MLP: 20 inputs, 4
// classes) and run a batch of two samples.
func Example() {
	m, err := infer.Load("../testdata/report/run/lowrank/model.safetensors", infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	x := make([]float32, 2*m.InputSize()) // two samples, one after the other
	for i := range x {
		x[i] = float32(i%7) / 7
	}
	logits, err := m.Predict(x, 2)
	if err != nil {
		log.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		fmt.Printf("sample %d: %.3f\n", i, logits[i*m.Classes():(i+1)*m.Classes()])
	}
	for _, l := range m.Layers(2) {
		if l.Kernel != "" {
			fmt.Printf("%s: %s\n", l.Name, l.Kernel)
		}
	}
	// Output:
	// sample 0: [0.066 -1.739 -1.904 1.418]
	// sample 1: [1.231 -1.479 -2.637 -0.476]
	// fc1: dense
	// fc2: dense
	// fc3: dense
}
