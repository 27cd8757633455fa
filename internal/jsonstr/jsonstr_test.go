package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Append writes what encoding/json writes, with and without HTML escaping, for strings
// and byte slices alike.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "plain", "quote \" back\\slash", "ctl \x00\x01\x1f\x7f\t\r\n", "<html> & more",
		"bad \xff\xfe utf8 \xe2\x82", "é ü 日本", "sep \u2028 \u2029", "\b\f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, html := range []bool{true, false} {
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetEscapeHTML(html)
			_ = enc.Encode(s)
			w := bytes.TrimSuffix(want.Bytes(), []byte("\n"))
			if got := Append(nil, s, html); !bytes.Equal(got, w) {
				t.Fatalf("Append(%q, html=%v) = %s, encoding/json: %s", s, html, got, w)
			}
			if got := Append(nil, []byte(s), html); !bytes.Equal(got, w) {
				t.Fatalf("Append([]byte(%q), html=%v) = %s, encoding/json: %s", s, html, got, w)
			}
		}
	})
}
