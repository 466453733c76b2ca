package rounds

import "testing"

func TestParseAndMedians(t *testing.T) {
	goOut := []byte("goos: linux\nBenchmarkInfer/lenet300-float/batch=1-2   \t  100000\t     16012 ns/op\t       0 B/op\nBenchmarkResNet/step \t 10\t 412000000 ns/op\nPASS\n")
	g := FromGoBench(goOut)
	if g["Infer/lenet300-float/batch=1"] != 16012 || g["ResNet/step"] != 412e6 || len(g) != 2 {
		t.Fatalf("FromGoBench = %v", g)
	}
	if d := g.DropTop(); d["lenet300-float/batch=1"] != 16012 || d["step"] != 412e6 {
		t.Fatalf("DropTop = %v", d)
	}
	j := FromJSONLines([]byte("warming up\n{\"name\": \"Infer/lenet300-static/batch=256\", \"ns\": 450000}\n{\"bad\"\n"), "Infer/")
	if j["lenet300-static/batch=256"] != 450000 || len(j) != 1 {
		t.Fatalf("FromJSONLines = %v", j)
	}

	a := []Sample{{"x": 10}, {"x": 30}, {"x": 20}, {}}
	b := []Sample{{"x": 5}, {"x": 10}, {"x": 20}, {"x": 1}}
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"median skips rounds without the name", Median(a, "x"), 20},
		{"ratio within rounds", Ratio(a, b, "x"), 2}, // 2, 3, 1
		{"absent name", Median(a, "y"), 0},
		{"even count", Med([]float64{4, 1, 3, 2}), 2.5},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
