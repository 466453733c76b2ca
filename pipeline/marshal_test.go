package pipeline

import (
	"reflect"
	"testing"
)

func TestMarshalYAMLRoundTrips(t *testing.T) {
	r := mustParse(t, `
  a: {type: xform, amount: 1.0, epochs: 2, method: a}
  b: {type: xform, amount: 1, needs: [a], matrix: {epochs: [1, 3]}}
  c: {type: xform, amount: [0.5, 1e-9, .inf, "x: y", true, null]}
`)
	src, err := MarshalYAML(r.Resolved)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("back.yaml", src, reg, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if !reflect.DeepEqual(back.Resolved, r.Resolved) {
		t.Fatalf("round trip changed the tree:\n%s", src)
	}
	if _, isFloat := back.Stage("a").Config.(*xform).Amount.(float64); !isFloat {
		t.Fatal("amount 1.0 came back as an integer")
	}
	if _, isInt := back.Stage("b[epochs=1]").Config.(*xform).Amount.(int); !isInt {
		t.Fatal("amount 1 came back as a float")
	}
}
