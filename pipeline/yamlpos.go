package pipeline

import (
	"bytes"
	"strings"
)

// go-yaml places some syntax errors a line early: a tab in indentation is
// reported at the line before it, an unclosed flow collection ([ or {) at the
// line before the one that opens it, or wherever the parser gave up. These
// find the place a reader has to look at.

// tabPos finds the first line, from line (1-based) on, whose indentation holds
// a tab, and the tab's column.
func tabPos(src []byte, line int) (int, int, bool) {
	lines := bytes.Split(src, []byte("\n"))
	for i := max(line-1, 0); i < len(lines); i++ {
		l := lines[i]
		indent := len(l) - len(bytes.TrimLeft(l, " \t"))
		if j := bytes.IndexByte(l[:indent], '\t'); j >= 0 {
			return i + 1, j + 1, true
		}
	}
	return 0, 0, false
}

// unclosedPos finds the flow collection ([ or {) that is never closed, or is
// closed by the wrong bracket, scanning as YAML does: brackets inside quoted
// scalars and comments do not count, nor do brackets inside a plain scalar of
// block context (name: a[1]).
func unclosedPos(src []byte) (int, int, bool) {
	type open struct {
		b         byte
		line, col int
	}
	var stack []open
	line, col := 1, 0
	valueStart := true // at the start of a node: a bracket here opens a collection
	for i := 0; i < len(src); i++ {
		c := src[i]
		col++
		switch {
		case c == '\n':
			line, col = line+1, 0
			valueStart = true
			continue
		case c == ' ' || c == '\t':
			continue
		case c == '#' && (i == 0 || src[i-1] == ' ' || src[i-1] == '\t' || src[i-1] == '\n'):
			for i+1 < len(src) && src[i+1] != '\n' {
				i++
			}
			continue
		case (c == '\'' || c == '"') && (valueStart || len(stack) > 0):
			// A quoted scalar: skip to its closing quote ('' and \" escape one).
			for i+1 < len(src) {
				i++
				col++
				if src[i] == '\n' {
					line, col = line+1, 0
				}
				if c == '"' && src[i] == '\\' {
					i++
					col++
					continue
				}
				if src[i] == c {
					if c == '\'' && i+1 < len(src) && src[i+1] == '\'' {
						i++
						col++
						continue
					}
					break
				}
			}
			valueStart = false
			continue
		}
		inFlow := len(stack) > 0
		switch {
		case (c == '[' || c == '{') && (valueStart || inFlow):
			stack = append(stack, open{c, line, col})
			valueStart = true
			continue
		case (c == ']' || c == '}') && inFlow:
			top := stack[len(stack)-1]
			if (top.b == '[') != (c == ']') {
				return top.line, top.col, true // closed by the wrong bracket
			}
			stack = stack[:len(stack)-1]
			valueStart = false
			continue
		case c == ',' && inFlow:
			valueStart = true
			continue
		case c == ':' && (i+1 == len(src) || src[i+1] == ' ' || src[i+1] == '\n' || src[i+1] == '\t' || inFlow):
			valueStart = true
			continue
		case c == '-' && valueStart && (i+1 == len(src) || src[i+1] == ' ' || src[i+1] == '\n'):
			continue // a block sequence entry: its value starts after
		}
		valueStart = false
	}
	if len(stack) > 0 {
		return stack[len(stack)-1].line, stack[len(stack)-1].col, true
	}
	return 0, 0, false
}

// refineYAMLPos moves a go-yaml syntax error to where its cause is.
func refineYAMLPos(src []byte, msg string, line int) (int, int) {
	switch {
	case strings.Contains(msg, "tab character") || strings.Contains(msg, "cannot start any token"):
		if l, c, ok := tabPos(src, line); ok {
			return l, c
		}
	case strings.Contains(msg, "did not find expected ',' or"), strings.Contains(msg, "did not find expected node content"),
		strings.Contains(msg, "flow"):
		if l, c, ok := unclosedPos(src); ok {
			return l, c
		}
	}
	return max(line, 1), 1
}
