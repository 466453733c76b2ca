package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/shrink-ml/shrink/infer"
)

// The server, started on a loopback port, answers what Predict computes,
// and refuses malformed requests with 400 and a message.
func TestServeOnLoopback(t *testing.T) {
	m, err := infer.Load("../../testdata/report/run/lowrank/model.safetensors", infer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, m) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()

	var info modelInfo
	get(t, base+"/v1/model", &info)
	if info.InputSize != 20 || info.Classes != 4 || len(info.Layers) == 0 {
		t.Errorf("model info %+v", info)
	}

	inputs := make([][]float32, 3)
	var flat []float32
	for i := range inputs {
		inputs[i] = make([]float32, 20)
		for j := range inputs[i] {
			inputs[i][j] = float32((i+1)*(j%5)) / 10
		}
		flat = append(flat, inputs[i]...)
	}
	want, err := m.Predict(flat, 3)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(predictRequest{Inputs: inputs})
	resp, err := http.Post(base+"/v1/predict", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var got predictResponse
	decode(t, resp, http.StatusOK, &got)
	if len(got.Logits) != 3 || !slices.Equal(slices.Concat(got.Logits...), want) {
		t.Errorf("logits %v, want %v", got.Logits, want)
	}
	for i, c := range got.Classes {
		if row := want[i*4 : i*4+4]; row[c] != slices.Max(row) {
			t.Errorf("sample %d: class %d is not the highest logit of %v", i, c, row)
		}
	}

	for _, c := range []struct{ name, body, msg string }{
		{"not json", "{", "the body is not"},
		{"no samples", `{"inputs": []}`, "0 samples"},
		{"short sample", `{"inputs": [[1, 2]]}`, "inputs[0] has 2 values; the model takes 20"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, err := http.Post(base+"/v1/predict", "application/json", strings.NewReader(c.body))
			if err != nil {
				t.Fatal(err)
			}
			var e map[string]string
			decode(t, resp, http.StatusBadRequest, &e)
			if !strings.Contains(e["error"], c.msg) {
				t.Errorf("error %q, want it to contain %q", e["error"], c.msg)
			}
		})
	}
}

func get(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, resp, http.StatusOK, v)
}

func decode(t *testing.T, resp *http.Response, code int, v any) {
	t.Helper()
	defer resp.Body.Close()
	if resp.StatusCode != code {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, code, b.String())
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(fmt.Errorf("decoding the response: %w", err))
	}
}

// Whatever the body, the handler answers 200 with one logit row per
// sample, or 400, 413 or 422 with a message; never a panic or a 500.
func FuzzPredict(f *testing.F) {
	m, err := infer.Load("../../testdata/report/run/lowrank/model.safetensors", infer.Options{})
	if err != nil {
		f.Fatal(err)
	}
	h := newHandler(m)
	f.Add(`{"inputs": [[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]]}`)
	f.Add(`{"inputs": [[1e39]]}`)
	f.Add(`{"inputs": null}`)
	f.Add(`[]`)
	f.Add(`{"inputs": [[3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38,3e38]]}`)
	f.Fuzz(func(t *testing.T, body string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/v1/predict", strings.NewReader(body)))
		switch rec.Code {
		case http.StatusOK:
			var resp predictResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Logits) == 0 || len(resp.Logits) != len(resp.Classes) {
				t.Fatalf("200 with %q (%v)", rec.Body.String(), err)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
