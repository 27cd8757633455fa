package discovery

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

// consulEntry is an entry of /v1/health/service as Consul 1.16 writes it, with the fields a
// watch skips.
func consulEntry(i int, tricky string) map[string]any {
	id := fmt.Sprintf("web-%03d", i)
	check := func(cid, out string) map[string]any {
		return map[string]any{"Node": "vm", "CheckID": cid, "Name": "Serf Health Status", "Status": "passing",
			"Notes": "", "Output": out, "ServiceID": "", "ServiceName": "", "ServiceTags": []string{}, "Type": "",
			"Interval": "", "Timeout": "", "ExposedPort": 0, "Definition": map[string]any{}, "CreateIndex": 11, "ModifyIndex": 11}
	}
	return map[string]any{
		"Node": map[string]any{"ID": "46b9f1c0-da8a-3b96-5859-e79e24654ebd", "Node": "vm", "Address": "127.0.0.1",
			"Datacenter": "dc1", "TaggedAddresses": map[string]string{"lan": "127.0.0.1", "wan": "127.0.0.1"},
			"Meta": map[string]string{"consul-network-segment": "", "consul-version": "1.16.3"}, "CreateIndex": 11, "ModifyIndex": 17},
		"Service": map[string]any{"ID": id, "Service": "web", "Tags": []string{"v1", tricky}, "Address": "10.0.0." + fmt.Sprint(i%250),
			"Meta": map[string]string{MetaInstance: "0123456789abcdef", "note": tricky}, "Port": 8000 + i,
			"Weights": map[string]int{"Passing": 1, "Warning": 1}, "EnableTagOverride": false,
			"Proxy":   map[string]any{"Mode": "", "MeshGateway": map[string]any{}, "Expose": map[string]any{}},
			"Connect": map[string]any{}, "PeerName": "", "CreateIndex": 18, "ModifyIndex": 18},
		"Checks": []any{check("serfHealth", "Agent alive and reachable"), check("service:"+id, tricky)},
	}
}

func TestDecodeHealthMatchesEncodingJSON(t *testing.T) {
	tricky := []string{
		``, `plain`, `with "quotes"`, `braces } ] { [ inside`, `back\slash`, `tab	and
newline`, `ünïcödé ☃`, "\u2028 separators \u2029", `\"]}`,
	}
	var bodies [][]byte
	for n := range []int{0, 1, 3} {
		var list []any
		for i := range n * 3 {
			list = append(list, consulEntry(i, tricky[i%len(tricky)]))
		}
		if list == nil {
			list = []any{}
		}
		compact, _ := json.Marshal(list)
		pretty, _ := json.MarshalIndent(list, " ", "\t")
		bodies = append(bodies, compact, pretty)
	}
	// Nulls, missing fields, numbers in odd places.
	bodies = append(bodies,
		[]byte(`[{"Node":null,"Service":{"ID":"a","Service":"s","Tags":null,"Meta":null,"Port":0},"Checks":null}]`),
		[]byte(`[{"Service":{"ID":"b","Port":-1,"Weights":{"Passing":1.5e3}},"Extra":[true,false,null,"x",{"a":[]}]}]`),
		[]byte(` [ ] `),
	)
	for i, b := range bodies {
		var want []healthEntry
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("body %d: encoding/json: %v", i, err)
		}
		got, err := scanHealth(b)
		if err != nil {
			t.Fatalf("body %d: scanHealth: %v\n%s", i, err, b)
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("body %d: scanHealth = %+v\nencoding/json = %+v", i, got, want)
		}
	}
}

func TestDecodeHealthFallsBackOrFails(t *testing.T) {
	// An escaped key is valid JSON the scanner leaves to encoding/json.
	got, err := decodeHealth([]byte(`[{"Serv\u0069ce":{"ID":"x"}}]`))
	if err != nil || len(got) != 1 || got[0].Service.ID != "x" {
		t.Fatalf("escaped key: %+v, %v", got, err)
	}
	for _, bad := range []string{``, `{`, `[`, `[{]`, `[{"Node":}]`, `[{"Service":{"ID":"x"}}`, `[] x`, `[{"Service":{"Port":"x"}}]`, `null x`} {
		if got, err := decodeHealth([]byte(bad)); err == nil && len(got) > 0 {
			t.Errorf("%q decoded to %+v", bad, got)
		}
	}
}

func FuzzDecodeHealth(f *testing.F) {
	one, _ := json.Marshal([]any{consulEntry(1, `a"b\c}`)})
	f.Add(one)
	f.Add([]byte(`[{"Node":{"Node":"n"},"Service":{"ID":"i","Tags":["t"],"Meta":{"k":"v"},"Port":1}}]`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := scanHealth(b)
		if err != nil {
			return
		}
		var want []healthEntry
		if json.Unmarshal(b, &want) != nil {
			return // the scanner is lenient about what it skips; encoding/json is the reference
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("scanHealth = %+v\nencoding/json = %+v", got, want)
		}
	})
}

func BenchmarkDecodeHealth(b *testing.B) {
	var list []any
	for i := range 100 {
		list = append(list, consulEntry(i, "GET http://127.0.0.1:8080/health: 200 OK"))
	}
	body, _ := json.Marshal(list)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			if _, err := scanHealth(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			var out []healthEntry
			if err := json.Unmarshal(body, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}
