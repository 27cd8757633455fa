package consulagent_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/pilotfish/pilotfish/integration_tests/consulagent"
)

type catalogEntry struct {
	ServiceID   string
	ServiceName string
	ServicePort int
}

// startAgent starts an agent, unless only unit tests run (-short).
func startAgent(t *testing.T) *consulagent.Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a Consul agent: not a unit test (-short)")
	}
	return consulagent.Start(t)
}

func TestRegisterThenRestartForgets(t *testing.T) {
	a := startAgent(t)

	reg := map[string]any{"ID": "web-1", "Name": "web", "Address": "127.0.0.1", "Port": 8080}
	body, _ := json.Marshal(reg)
	req, _ := http.NewRequest(http.MethodPut, a.URL()+"/v1/agent/service/register", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %s: %s", resp.Status, msg)
	}

	// The agent syncs local services to the catalog asynchronously.
	var got []catalogEntry
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = catalog(t, a, "web")
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(got) != 1 || got[0].ServiceID != "web-1" || got[0].ServicePort != 8080 {
		t.Fatalf("catalog after register = %+v, want web-1 on port 8080", got)
	}

	addr := a.Addr()
	a.Restart(t)
	if a.Addr() != addr {
		t.Fatalf("restart moved the agent from %s to %s", addr, a.Addr())
	}
	if got := catalog(t, a, "web"); len(got) != 0 {
		t.Fatalf("catalog after restart = %+v, want empty", got)
	}
}

func TestKillThenRestart(t *testing.T) {
	a := startAgent(t)
	a.Kill()
	if _, err := http.Get(a.URL() + "/v1/status/leader"); err == nil {
		t.Fatal("agent still answers after Kill")
	}
	a.Restart(t)
	if got := catalog(t, a, "consul"); len(got) != 1 {
		t.Fatalf("catalog of service consul after restart = %+v, want one entry", got)
	}
}

func catalog(t *testing.T, a *consulagent.Agent, name string) []catalogEntry {
	t.Helper()
	resp, err := http.Get(a.URL() + "/v1/catalog/service/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("catalog %s: %s: %s", name, resp.Status, msg)
	}
	var entries []catalogEntry
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		t.Fatal(err)
	}
	return entries
}
