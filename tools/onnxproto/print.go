package main

import (
	"bytes"
	"fmt"
	"strings"

	"google.golang.org/protobuf/types/descriptorpb"
)

// printer writes a proto2 file back from its descriptor. It knows the
// features onnx.proto uses and refuses the rest, so a newer schema that needs
// more fails loudly instead of printing something protoc reads differently.
type printer struct {
	buf      bytes.Buffer
	pkg      string // ".onnx."
	comments map[string]string
	err      error
}

// printProto renders fd with header (comment lines, without "//") on top.
func printProto(fd *descriptorpb.FileDescriptorProto, comments map[string]string, header string) ([]byte, error) {
	if fd.GetSyntax() != "" && fd.GetSyntax() != "proto2" {
		return nil, fmt.Errorf("syntax %q: only proto2 is supported", fd.GetSyntax())
	}
	if len(fd.Dependency) > 0 || len(fd.Service) > 0 || len(fd.Extension) > 0 {
		return nil, fmt.Errorf("imports, services and extensions are not supported")
	}
	p := &printer{pkg: "." + fd.GetPackage() + ".", comments: comments}
	p.comment("", strings.TrimSuffix(header, "\n"))
	p.printf("\nsyntax = \"proto2\";\n\npackage %s;\n", fd.GetPackage())
	if o := fd.GetOptions(); o != nil {
		if o.OptimizeFor == nil || !onlyOptimizeFor(o) {
			return nil, fmt.Errorf("file options other than optimize_for are not supported: %v", o)
		}
		p.printf("\noption optimize_for = %s;\n", o.GetOptimizeFor())
	}
	for _, m := range fd.MessageType {
		p.printf("\n")
		p.message(m, fd.GetPackage(), "")
	}
	for _, e := range fd.EnumType {
		p.printf("\n")
		p.enum(e, fd.GetPackage(), "")
	}
	return p.buf.Bytes(), p.err
}

func onlyOptimizeFor(o *descriptorpb.FileOptions) bool {
	c := &descriptorpb.FileOptions{OptimizeFor: o.OptimizeFor}
	return c.String() == o.String()
}

func (p *printer) printf(format string, a ...any) { fmt.Fprintf(&p.buf, format, a...) }

func (p *printer) fail(format string, a ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, a...)
	}
}

func (p *printer) comment(indent, text string) {
	if text == "" {
		return
	}
	for _, l := range strings.Split(text, "\n") {
		if l == "" {
			p.printf("%s//\n", indent)
		} else {
			p.printf("%s// %s\n", indent, l)
		}
	}
}

func (p *printer) message(m *descriptorpb.DescriptorProto, scope, indent string) {
	full := scope + "." + m.GetName()
	if len(m.Extension) > 0 || len(m.ExtensionRange) > 0 || m.Options != nil {
		p.fail("message %s: extensions and message options are not supported", full)
	}
	p.comment(indent, p.comments[full])
	p.printf("%smessage %s {\n", indent, m.GetName())
	in := indent + "  "
	blank := false // a blank line goes between groups of declarations
	sep := func() {
		if blank {
			p.printf("\n")
		}
		blank = true
	}
	if len(m.ReservedRange) > 0 {
		sep()
		var r []string
		for _, rr := range m.ReservedRange {
			r = append(r, rangeText(rr.GetStart(), rr.GetEnd()-1, 536870911))
		}
		p.printf("%sreserved %s;\n", in, strings.Join(r, ", "))
	}
	if len(m.ReservedName) > 0 {
		if len(m.ReservedRange) == 0 {
			sep()
		}
		p.printf("%sreserved %s;\n", in, quoteAll(m.ReservedName))
	}
	for _, e := range m.EnumType {
		sep()
		p.enum(e, full, in)
	}
	for _, n := range m.NestedType {
		sep()
		p.message(n, full, in)
	}
	for i := 0; i < len(m.Field); i++ {
		f := m.Field[i]
		sep()
		if f.OneofIndex == nil {
			p.field(f, full, in, true)
			continue
		}
		k := f.GetOneofIndex()
		o := m.OneofDecl[k]
		if o.Options != nil {
			p.fail("oneof %s.%s: options are not supported", full, o.GetName())
		}
		p.comment(in, p.comments[full+"."+o.GetName()])
		p.printf("%soneof %s {\n", in, o.GetName())
		for ; i < len(m.Field) && m.Field[i].OneofIndex != nil && m.Field[i].GetOneofIndex() == k; i++ {
			p.field(m.Field[i], full, in+"  ", false)
		}
		i--
		p.printf("%s}\n", in)
	}
	p.printf("%s}\n", indent)
}

func (p *printer) field(f *descriptorpb.FieldDescriptorProto, scope, indent string, label bool) {
	full := scope + "." + f.GetName()
	if f.DefaultValue != nil || (f.JsonName != nil && f.GetJsonName() != jsonName(f.GetName())) || f.Extendee != nil || f.Proto3Optional != nil {
		p.fail("field %s: default values, json names and extensions are not supported", full)
	}
	typ := strings.ToLower(strings.TrimPrefix(f.GetType().String(), "TYPE_"))
	switch f.GetType() {
	case descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, descriptorpb.FieldDescriptorProto_TYPE_ENUM:
		typ = strings.TrimPrefix(f.GetTypeName(), p.pkg)
	case descriptorpb.FieldDescriptorProto_TYPE_GROUP:
		p.fail("field %s: groups are not supported", full)
	}
	opts := ""
	if o := f.Options; o != nil {
		if o.Packed == nil || (&descriptorpb.FieldOptions{Packed: o.Packed}).String() != o.String() {
			p.fail("field %s: options other than packed are not supported: %v", full, o)
		}
		opts = fmt.Sprintf(" [packed = %t]", o.GetPacked())
	}
	p.comment(indent, p.comments[full])
	lab := ""
	if label {
		lab = strings.ToLower(strings.TrimPrefix(f.GetLabel().String(), "LABEL_")) + " "
	}
	p.printf("%s%s%s %s = %d%s;\n", indent, lab, typ, f.GetName(), f.GetNumber(), opts)
}

func (p *printer) enum(e *descriptorpb.EnumDescriptorProto, scope, indent string) {
	full := scope + "." + e.GetName()
	if e.Options != nil {
		p.fail("enum %s: options are not supported", full)
	}
	p.comment(indent, p.comments[full])
	p.printf("%senum %s {\n", indent, e.GetName())
	in := indent + "  "
	if len(e.ReservedRange) > 0 {
		var r []string
		for _, rr := range e.ReservedRange {
			r = append(r, rangeText(rr.GetStart(), rr.GetEnd(), 2147483647)) // enum ranges are inclusive
		}
		p.printf("%sreserved %s;\n", in, strings.Join(r, ", "))
	}
	if len(e.ReservedName) > 0 {
		p.printf("%sreserved %s;\n", in, quoteAll(e.ReservedName))
	}
	for i, v := range e.Value {
		if v.Options != nil {
			p.fail("enum value %s.%s: options are not supported", full, v.GetName())
		}
		c := p.comments[full+"."+v.GetName()]
		if c != "" && i > 0 {
			p.printf("\n")
		}
		p.comment(in, c)
		p.printf("%s%s = %d;\n", in, v.GetName(), v.GetNumber())
	}
	p.printf("%s}\n", indent)
}

// rangeText prints an inclusive range; max is the largest field number or
// enum value, which protoc spells "max".
func rangeText(lo, hi, max int32) string {
	switch {
	case lo == hi:
		return fmt.Sprint(lo)
	case hi == max:
		return fmt.Sprintf("%d to max", lo)
	}
	return fmt.Sprintf("%d to %d", lo, hi)
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// jsonName is protoc's default JSON name, which descriptors may or may not
// carry (protoc writes it, protoc-gen-es drops it).
func jsonName(field string) string {
	var b strings.Builder
	up := false
	for _, r := range field {
		switch {
		case r == '_':
			up = true
		case up:
			b.WriteString(strings.ToUpper(string(r)))
			up = false
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stripJSONNames clears the fields' JSON names, so descriptors from protoc
// and from protoc-gen-es compare equal.
func stripJSONNames(fd *descriptorpb.FileDescriptorProto) {
	var strip func([]*descriptorpb.DescriptorProto)
	strip = func(ms []*descriptorpb.DescriptorProto) {
		for _, m := range ms {
			for _, f := range m.Field {
				f.JsonName = nil
			}
			strip(m.NestedType)
		}
	}
	strip(fd.MessageType)
}
