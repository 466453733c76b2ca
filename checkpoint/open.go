package checkpoint

import (
	"bytes"
	"fmt"
	"os"
)

// OpenRegular opens path for reading when it is a regular file, and returns it
// with its size. Anything else is refused before it is opened: a FIFO would
// block the open itself, and /dev/zero or a socket would be read forever. The
// size bounds what readers of the file may allocate.
func OpenRegular(path string) (*os.File, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("%s is not a regular file (%s)", path, kind(st.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	// Check the file opened, not the name stat saw: it may have been replaced.
	if st, err = f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err == nil {
			err = fmt.Errorf("%s is not a regular file (%s)", path, kind(st.Mode()))
		}
		return nil, 0, err
	}
	return f, st.Size(), nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// foreignFormat names the formats people save models in that are not
// safetensors, from a file's first bytes: what to do instead beats "header
// length 578712552184433488 exceeds the limit".
func foreignFormat(prefix []byte) string {
	const save = "save the state_dict with safetensors instead: safetensors.torch.save_file(model.state_dict(), \"model.safetensors\")"
	switch {
	case bytes.HasPrefix(prefix, []byte("PK\x03\x04")):
		return "this is a zip archive, which is how torch.save writes a PyTorch pickle (.pt, .pth): " + save
	case len(prefix) >= 2 && prefix[0] == 0x80 && prefix[1] >= 2 && prefix[1] <= 5:
		return "this is a Python pickle (torch.save's legacy format, .pt, .pth, .bin): " + save
	case bytes.HasPrefix(prefix, []byte("SHKZ")):
		return "this is a shrink compressed file (shrink export --format compressed): shrink inspect, eval and model.checkpoint read it as it is, or turn it back into safetensors with shrink export FILE --format dense OUT"
	}
	return ""
}
