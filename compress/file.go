package compress

import (
	"fmt"
	"io"

	"github.com/shrink-ml/shrink/checkpoint"
)

// ReadFile reads a checkpoint in either format, told apart by the magic: a
// compressed file comes back with its Info, a safetensors one with nil. Only a
// regular file is read, its first bytes before the rest, and nothing beyond its
// size is allocated for it (decoding then stays within DefaultLimits).
func ReadFile(path string) (*checkpoint.File, *Info, error) {
	fh, size, err := checkpoint.OpenRegular(path)
	if err != nil {
		return nil, nil, err
	}
	defer fh.Close()
	var head [4]byte
	n, _ := fh.ReadAt(head[:], 0)
	if !IsCompressed(head[:n]) {
		f, err := checkpoint.Read(fh, size)
		if err != nil {
			return nil, nil, fmt.Errorf("%s is not a valid safetensors checkpoint (nor a shrink compressed file): %w", path, err)
		}
		return f, nil, nil
	}
	if size > int64(DefaultLimits.MaxBytes) {
		return nil, nil, fmt.Errorf("%s: compress: %d bytes, more than the %d a compressed checkpoint may hold", path, size, DefaultLimits.MaxBytes)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(io.NewSectionReader(fh, 0, size), b); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
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
