package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptor decodes the FileDescriptorProto that protoc-gen-es embeds in its
// JavaScript output as fileDesc("<base64>").
func descriptor(js []byte) (*descriptorpb.FileDescriptorProto, error) {
	m := regexp.MustCompile(`fileDesc\("([A-Za-z0-9+/=_-]+)"`).FindSubmatch(js)
	if m == nil {
		return nil, fmt.Errorf("no fileDesc(\"...\") call: is this protoc-gen-es v2 output?")
	}
	s := strings.TrimRight(string(m[1]), "=")
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("fileDesc: %w", err)
	}
	fd := &descriptorpb.FileDescriptorProto{}
	if err := proto.Unmarshal(raw, fd); err != nil {
		return nil, fmt.Errorf("fileDesc: %w", err)
	}
	return fd, nil
}

// comments collects the doc comments that protoc-gen-es copied from the
// .proto into its .d.ts output. Each JSDoc block ends with a line such as
// "@generated from message onnx.TensorProto" or "@generated from field:
// optional string name = 1;", which names the element; fields and enum
// values name only themselves, so they belong to the message or enum named
// last. Keys are "onnx.TensorProto", "onnx.TensorProto.name" (fields, enum
// values, oneofs).
func comments(dts []byte) (map[string]string, error) {
	out := map[string]string{}
	var scope string // the message or enum whose members follow
	var block []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(dts))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "/**":
			in, block = true, nil
			continue
		case !in:
			continue
		case line == "*/":
			in = false
		default:
			block = append(block, strings.TrimPrefix(strings.TrimPrefix(line, "*"), " "))
			continue
		}
		if len(block) == 0 {
			continue
		}
		tag, ok := strings.CutPrefix(block[len(block)-1], "@generated from ")
		if !ok {
			continue // "Describes the message ...": protoc-gen-es's own text
		}
		text := strings.TrimSpace(strings.Join(block[:len(block)-1], "\n"))
		text = strings.ReplaceAll(text, `*\/`, "*/")
		var key string
		switch kind, rest, _ := strings.Cut(tag, " "); kind {
		case "message", "enum":
			if v, ok := strings.CutPrefix(rest, "value: "); ok && kind == "enum" {
				name, _, _ := strings.Cut(v, " ")
				key = scope + "." + name
			} else {
				scope, key = rest, rest
			}
		case "field:":
			name, err := fieldName(rest)
			if err != nil {
				return nil, err
			}
			key = scope + "." + name
		case "oneof":
			key = rest
		case "file":
			continue
		default:
			return nil, fmt.Errorf("unknown doc tag %q", tag)
		}
		if text != "" {
			out[key] = text
		}
	}
	return out, sc.Err()
}

// fieldName takes the name out of a field's declaration, "optional string
// name = 1;" or "repeated float float_data = 4 [packed = true];".
func fieldName(decl string) (string, error) {
	lhs, _, ok := strings.Cut(decl, " = ")
	f := strings.Fields(lhs)
	if !ok || len(f) < 2 {
		return "", fmt.Errorf("field declaration %q: want \"[label] type name = number;\"", decl)
	}
	return f[len(f)-1], nil
}
