package discovery

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// ifaceAddrs lists the addresses of one interface, or of all interfaces when name is "".
type ifaceAddrs func(name string) ([]net.IP, error)

func systemAddrs(name string) ([]net.IP, error) {
	var ifaces []net.Interface
	if name == "" {
		all, err := net.Interfaces()
		if err != nil {
			return nil, err
		}
		ifaces = all
	} else {
		i, err := net.InterfaceByName(name)
		if err != nil {
			return nil, err
		}
		ifaces = []net.Interface{*i}
	}
	var out []net.IP
	for _, i := range ifaces {
		if i.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				out = append(out, ipn.IP)
			}
		}
	}
	return out, nil
}

// ResolveAddress picks the service address from the `interfaces` specs, first match wins:
// "eth0" (its first IPv4, else first address), "eth0:inet", "eth0:inet6", "eth0[1]" (its
// second address), "inet" / "inet6" (the first non-loopback address of that family on any
// interface), a CIDR such as "10.0.0.0/8", or "static:192.0.2.7".
func ResolveAddress(specs []string) (string, error) { return resolveAddress(specs, systemAddrs) }

func resolveAddress(specs []string, addrs ifaceAddrs) (string, error) {
	for _, spec := range specs {
		if ip := match(spec, addrs); ip != nil {
			return ip.String(), nil
		}
	}
	return "", fmt.Errorf("no interface matches %q", specs)
}

func match(spec string, addrs ifaceAddrs) net.IP {
	switch {
	case strings.HasPrefix(spec, "static:"):
		return net.ParseIP(strings.TrimPrefix(spec, "static:"))
	case spec == "inet" || spec == "inet6":
		all, _ := addrs("")
		return first(all, spec == "inet6", true)
	case strings.Contains(spec, "/"):
		_, cidr, err := net.ParseCIDR(spec)
		if err != nil {
			return nil
		}
		all, _ := addrs("")
		for _, ip := range all {
			if cidr.Contains(ip) {
				return ip
			}
		}
		return nil
	}
	name, family := spec, ""
	if i := strings.LastIndexByte(spec, ':'); i >= 0 {
		name, family = spec[:i], spec[i+1:]
	}
	index := -1
	if i := strings.IndexByte(name, '['); i >= 0 && strings.HasSuffix(name, "]") {
		n, err := strconv.Atoi(name[i+1 : len(name)-1])
		if err != nil {
			return nil
		}
		name, index = name[:i], n
	}
	list, err := addrs(name)
	if err != nil || len(list) == 0 {
		return nil
	}
	switch {
	case index >= 0:
		if index < len(list) {
			return list[index]
		}
		return nil
	case family == "inet6":
		return first(list, true, false)
	case family == "inet":
		return first(list, false, false)
	}
	if ip := first(list, false, false); ip != nil {
		return ip
	}
	return list[0]
}

// first returns the first address of the family, skipping loopback and link-local
// addresses when public is set.
func first(list []net.IP, v6, public bool) net.IP {
	for _, ip := range list {
		if (ip.To4() == nil) != v6 {
			continue
		}
		if public && (ip.IsLoopback() || ip.IsLinkLocalUnicast()) {
			continue
		}
		return ip
	}
	return nil
}
