package sigearly

import "testing"

func TestMayRun(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"run"}, true},
		{[]string{"--", "sh"}, true},
		{[]string{"-config", "x.hcl"}, true},
		{[]string{"-socket", "s", "status"}, true}, // main decides, and releases
		{[]string{"status"}, false},
		{[]string{"validate", "-config", "x"}, false},
		{[]string{"-version"}, false},
		{[]string{"--help"}, false},
		{[]string{"__exec", "-pid", "LISTEN_PID", "--", "/bin/app", "app"}, false},
	} {
		if got := mayRun(c.args); got != c.want {
			t.Errorf("mayRun(%q) = %v, want %v", c.args, got, c.want)
		}
	}
}
