package discovery

import (
	"errors"
	"net"
	"testing"
)

func fakeAddrs(name string) ([]net.IP, error) {
	ifaces := map[string][]string{
		"lo":   {"127.0.0.1", "::1"},
		"eth0": {"fe80::1", "10.1.2.3", "10.1.2.4", "2001:db8::5"},
		"eth1": {"192.168.7.9"},
	}
	parse := func(list []string) []net.IP {
		var out []net.IP
		for _, s := range list {
			out = append(out, net.ParseIP(s))
		}
		return out
	}
	if name == "" {
		var all []net.IP
		for _, n := range []string{"lo", "eth0", "eth1"} {
			all = append(all, parse(ifaces[n])...)
		}
		return all, nil
	}
	list, ok := ifaces[name]
	if !ok {
		return nil, errors.New("no such interface")
	}
	return parse(list), nil
}

func TestResolveAddress(t *testing.T) {
	cases := []struct {
		specs []string
		want  string
	}{
		{[]string{"eth0"}, "10.1.2.3"},
		{[]string{"eth0:inet"}, "10.1.2.3"},
		{[]string{"eth0:inet6"}, "fe80::1"},
		{[]string{"eth0[2]"}, "10.1.2.4"},
		{[]string{"inet"}, "10.1.2.3"},
		{[]string{"inet6"}, "2001:db8::5"},
		{[]string{"192.168.0.0/16"}, "192.168.7.9"},
		{[]string{"static:192.0.2.7"}, "192.0.2.7"},
		{[]string{"eth9", "eth1:inet"}, "192.168.7.9"},
		{[]string{"172.16.0.0/12", "lo"}, "127.0.0.1"},
		{[]string{"eth0[9]", "eth1"}, "192.168.7.9"},
	}
	for _, c := range cases {
		got, err := resolveAddress(c.specs, fakeAddrs)
		if err != nil || got != c.want {
			t.Errorf("%q: %q, %v; want %q", c.specs, got, err, c.want)
		}
	}
	if _, err := resolveAddress([]string{"eth9", "10.0.0.0/24"}, fakeAddrs); err == nil {
		t.Error("nothing matches, yet an address was chosen")
	}
}

func TestResolveRealInterfaces(t *testing.T) {
	if got, err := ResolveAddress([]string{"lo"}); err != nil || got != "127.0.0.1" {
		t.Fatalf("lo: %q %v", got, err)
	}
}
