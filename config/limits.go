package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// What a configuration file may hold and compute (docs/configuration.md#limits). HCL parses
// and evaluates recursively and a goroutine stack overflow cannot be recovered, so a hostile
// file must be refused before the parser sees it, and evaluation is metered as it runs.
const (
	// MaxFileSize is the largest configuration file read.
	MaxFileSize = 4 << 20
	// MaxDepth is how deeply a file may nest: brackets, braces (blocks and objects),
	// parentheses, ${…} and %{…}, template if/for blocks, and each operator or index in a
	// chain (a + b + c is two levels deeper than a).
	MaxDepth = 64
	// MaxTokens bounds the tokens of a file (names, numbers, strings, operators, brackets);
	// the parser keeps hundreds of bytes for each.
	MaxTokens = 250_000
	// MaxTemplateCopy bounds the bytes hclsyntax copies to join the literal parts of the
	// strings and heredocs of a file, which grows with lines × length for each.
	MaxTemplateCopy = 256 << 20
	// MaxString is the longest string an expression may produce.
	MaxString = 1 << 20
	// MaxElements is how many elements one value may hold, nested ones included.
	MaxElements = 4096
	// MaxEvalBytes is how much a whole load may evaluate: the size of every value each
	// expression produces, added up.
	MaxEvalBytes = 64 << 20
	// EvalTimeout is the time a whole load may take.
	EvalTimeout = 5 * time.Second
)

const limitsDoc = "docs/configuration.md#limits"

// ReadFile reads a configuration file as Load does, within the limits.
func ReadFile(path string) ([]byte, hcl.Diagnostics) { return readConfig(path) }

// readConfig reads at most MaxFileSize+1 bytes: a bigger file is refused without being read.
func readConfig(path string) ([]byte, hcl.Diagnostics) {
	f, err := os.Open(path)
	if err != nil {
		return nil, readError(path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > MaxFileSize {
		return nil, tooLarge(path, st.Size())
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, readError(path, err)
	}
	if len(src) > MaxFileSize {
		return nil, tooLarge(path, int64(len(src)))
	}
	return src, nil
}

func readError(path string, err error) hcl.Diagnostics {
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Cannot read configuration",
		Detail:   err.Error(),
		Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
	}}
}

func tooLarge(path string, size int64) hcl.Diagnostics {
	more := ""
	if size > MaxFileSize+1 {
		more = fmt.Sprintf(" (%d bytes)", size)
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Configuration file too large",
		Detail:   fmt.Sprintf("the file is larger than %d MiB%s; see %s", MaxFileSize>>20, more, limitsDoc),
		Subject:  &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos},
	}}
}

// checkSource refuses, before parsing, a file over MaxFileSize, nested deeper than MaxDepth
// or holding more than MaxTokens tokens.
func checkSource(path string, src []byte, isJSON bool) hcl.Diagnostics {
	if len(src) > MaxFileSize {
		return tooLarge(path, int64(len(src)))
	}
	// HCL reads a malformed UTF-8 sequence as one character, swallowing the byte after a
	// lead byte (a quote, a bracket): the depth scanner would no longer see what HCL sees.
	if bad := invalidUTF8(src); bad >= 0 {
		pos := posAt(src, bad)
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Invalid UTF-8",
			Detail:   fmt.Sprintf("a configuration file is UTF-8 text; the byte 0x%02x here is not part of a valid character; see docs/configuration.md#limits", src[bad]),
			Subject:  &hcl.Range{Filename: path, Start: pos, End: pos},
		}}
	}
	var err *scanError
	if isJSON {
		_, err = scanJSON(src)
	} else {
		_, err = scanNative(src)
	}
	if err == nil {
		return nil
	}
	if err.broken >= 0 {
		if diags := syntaxErrorsBefore(path, src, err.broken); diags.HasErrors() {
			return diags
		}
	}
	pos := posAt(src, err.offset)
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  err.summary(),
		Detail:   err.detail(src),
		Subject:  &hcl.Range{Filename: path, Start: pos, End: pos},
	}}
}

// syntaxErrorsBefore returns HCL's own diagnostics of the syntax error at offset broken:
// the file up to there nests within the limits, so HCL may parse that much of it.
func syntaxErrorsBefore(path string, src []byte, broken int) hcl.Diagnostics {
	end := len(src)
	if n := bytes.IndexByte(src[broken:], '\n'); n >= 0 {
		end = broken + n
	}
	end = min(end, broken+MaxDepth) // the rest of the line may open more levels
	_, diags := hclparse.NewParser().ParseHCL(src[:end], path)
	var out hcl.Diagnostics
	for _, d := range diags {
		if d.Severity == hcl.DiagError && d.Subject != nil && d.Subject.Start.Byte <= broken {
			out = append(out, d)
		}
	}
	return out
}

// invalidUTF8 is the offset of the first byte of src that is not part of valid UTF-8, or -1.
func invalidUTF8(src []byte) int {
	if utf8.Valid(src) {
		return -1
	}
	for i := 0; i < len(src); {
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// posAt turns a byte offset into a line and column (counted in characters, from 1).
func posAt(src []byte, offset int) hcl.Pos {
	offset = min(max(offset, 0), len(src))
	line := 1 + bytes.Count(src[:offset], []byte{'\n'})
	start := bytes.LastIndexByte(src[:offset], '\n') + 1
	return hcl.Pos{Line: line, Column: 1 + utf8.RuneCount(src[start:offset]), Byte: offset}
}
