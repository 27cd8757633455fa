package containerpilot

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// quote writes a string as hclwrite does: same escapes, same template-sequence doubling,
// same normalisation.
func TestQuoteAsHCLWrite(t *testing.T) {
	cases := []string{"", "a", `"`, `\`, "${x}", "%{if}", "$", "%", "$${", "a\nb\r\tc", "\x00\x1b\x7f",
		"\u00e9", "e\u0301", "\u200b", "\ufeff", "\U0001F600", "\U000E0001", "\xff", "a\xc3", "100%", "$ {"}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab${}%\"\\\n\t\x01\u0301e\u00a0\u2028\U0001F600\U000E0001")
	for range 5000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteRune(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		want := strings.TrimSpace(string(hclwrite.TokensForValue(cty.StringVal(s)).Bytes()))
		if got := quote(s); got != want {
			t.Fatalf("quote(%q) = %s, hclwrite writes %s", s, got, want)
		}
	}
}
