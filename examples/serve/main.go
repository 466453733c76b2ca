// Command serve serves a shrink checkpoint over HTTP with package infer:
// JSON in, JSON out, any number of requests at once.
//
//	go run ./examples/serve -model runs/quickstart/train/model.safetensors -addr 127.0.0.1:8080
//	curl -s localhost:8080/v1/model
//	curl -s -d '{"inputs": [[0, 0.5, ...784 values...]]}' localhost:8080/v1/predict
//
// POST /v1/predict takes {"inputs": [[...], ...]}, one array of
// InputSize() numbers per sample, and answers {"logits": [[...], ...],
// "classes": [...]} (each sample's logits and its highest-scoring class).
// The samples of one request run as one batch (a dynamically quantized
// model takes its activation ranges from the whole batch, as PyTorch's
// dynamic layers do). GET /v1/model describes the model and its kernels.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/shrink-ml/shrink/infer"
)

func main() {
	path := flag.String("model", "", "the checkpoint to serve (safetensors, compressed export or ONNX)")
	addr := flag.String("addr", "127.0.0.1:8080", "the address to listen on")
	flag.Parse()
	if *path == "" {
		fmt.Fprintln(os.Stderr, "serve: -model is needed: the checkpoint to serve")
		os.Exit(2)
	}
	m, err := infer.Load(*path, infer.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log.Printf("serving %s on http://%s", *path, ln.Addr())
	if err := serve(ctx, ln, m); err != nil {
		log.Fatal(err)
	}
}

// serve answers requests on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, m *infer.Model) error {
	srv := &http.Server{Handler: newHandler(m), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shut); err != nil {
			return err
		}
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}

// maxSamples bounds one request's batch (and so its memory).
const maxSamples = 1024

type predictRequest struct {
	Inputs [][]float32 `json:"inputs"`
}

type predictResponse struct {
	Logits  [][]float32 `json:"logits"`
	Classes []int       `json:"classes"`
}

type modelInfo struct {
	InputSize int           `json:"input_size"`
	Classes   int           `json:"classes"`
	Layers    []infer.Layer `json:"layers"`
}

func newHandler(m *infer.Model) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/model", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, modelInfo{InputSize: m.InputSize(), Classes: m.Classes(), Layers: m.Layers(1)})
	})
	mux.HandleFunc("POST /v1/predict", func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, int64(maxSamples*m.InputSize()*24+1024))
		var req predictRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			httpError(w, http.StatusBadRequest, "the body is not {\"inputs\": [[numbers...], ...]}: %v", err)
			return
		}
		n := len(req.Inputs)
		if n == 0 || n > maxSamples {
			httpError(w, http.StatusBadRequest, "inputs has %d samples: send 1 to %d", n, maxSamples)
			return
		}
		x := make([]float32, 0, n*m.InputSize())
		for i, s := range req.Inputs {
			if len(s) != m.InputSize() {
				httpError(w, http.StatusBadRequest, "inputs[%d] has %d values; the model takes %d per sample", i, len(s), m.InputSize())
				return
			}
			x = append(x, s...)
		}
		logits, err := m.Predict(x, n)
		if err != nil {
			httpError(w, http.StatusInternalServerError, "%v", err)
			return
		}
		for i, v := range logits {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				httpError(w, http.StatusUnprocessableEntity, "sample %d's logits are not finite (JSON has no number for them): are its inputs in the range the model was trained on?", i/m.Classes())
				return
			}
		}
		c := m.Classes()
		resp := predictResponse{Logits: make([][]float32, n), Classes: make([]int, n)}
		for i := range n {
			row := logits[i*c : (i+1)*c]
			resp.Logits[i] = row
			for j, v := range row {
				if v > row[resp.Classes[i]] {
					resp.Classes[i] = j
				}
			}
		}
		writeJSON(w, http.StatusOK, resp)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

func httpError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, map[string]string{"error": fmt.Sprintf(format, args...)})
}
