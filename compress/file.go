package compress

import (
	"bytes"
	"fmt"
	"os"

	"github.com/shrink-ml/shrink/checkpoint"
)

// ReadFile reads a checkpoint in either format, told apart by the magic: a
// compressed file comes back with its Info, a safetensors one with nil.
func ReadFile(path string) (*checkpoint.File, *Info, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	if !IsCompressed(b) {
		f, err := checkpoint.Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not a valid safetensors checkpoint (nor a shrink compressed file): %w", path, err)
		}
		return f, nil, nil
	}
	f, info, err := DecodeInfo(b, DefaultLimits)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, info, nil
}

// WriteFile writes f compressed to path atomically (a synced temporary file
// renamed over path) and returns the bytes written.
func WriteFile(path string, f *checkpoint.File) (int, error) {
	b, err := Encode(f)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := checkpoint.WriteBytes(path, b); err != nil {
		return 0, fmt.Errorf("compress: %w", err) // names path
	}
	return len(b), nil
}
