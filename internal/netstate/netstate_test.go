package netstate

import (
	"bufio"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func binding(port, mac string, ips ...string) Binding {
	b := Binding{Port: port, VM: "vm-" + port, MAC: mac, Class: 2, Inbound: "allow-established"}
	for _, s := range ips {
		a := netip.MustParseAddr(s)
		if a.Is4() {
			b.IPv4 = append(b.IPv4, a)
		} else {
			b.IPv6 = append(b.IPv6, a)
		}
	}
	return b
}

func events(t *testing.T, dir string) []Event {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, Dir, LeasesFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestLeases(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if bs, err := s.Bindings(); err != nil || len(bs) != 0 {
		t.Fatalf("empty store: %v %v", bs, err)
	}
	a := binding("vnet0", "52:54:00:AA:00:01", "10.0.0.2", "2001:db8::2")
	if _, err := s.Put(a, t0); err != nil {
		t.Fatal(err)
	}
	// The same binding again: no new lease.
	if old, err := s.Put(a, t0.Add(time.Minute)); err != nil || old == nil {
		t.Fatalf("Put again: %v %v", old, err)
	}
	// A new address: the old lease ends, a new one starts.
	a2 := binding("vnet0", "52:54:00:aa:00:01", "10.0.0.3")
	if _, err := s.Put(a2, t0.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetQuarantine("vnet0", true, "ids alert 17", t0.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	b := binding("vnet1", "52:54:00:aa:00:02", "10.0.0.9")
	if _, err := s.Put(b, t0.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete("vnet0", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range events(t, dir) {
		got = append(got, e.MessageType+" "+e.Event+" "+e.Port+" "+e.Time.Format("15:04"))
	}
	want := []string{
		"lease start vnet0 10:00", "lease end vnet0 10:02", "lease start vnet0 10:02",
		"containment quarantine-on vnet0 10:03", "lease start vnet1 10:04", "lease end vnet0 10:05",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	bs, err := s.Bindings()
	if err != nil || len(bs) != 1 || bs[0].Port != "vnet1" || !bs[0].Since.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("Bindings = %+v, %v", bs, err)
	}
	evs := events(t, dir)
	if evs[0].MAC != "52:54:00:aa:00:01" || len(evs[0].IPv6) != 1 || evs[1].IPv4[0].String() != "10.0.0.2" {
		t.Fatalf("lease details: %+v", evs[:2])
	}
}

func TestRefuses(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(dir)
	good := binding("vnet0", "52:54:00:aa:00:01", "10.0.0.2")
	if _, err := s.Put(good, t0); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, Dir, PortsFile))
	nEvents := len(events(t, dir))
	bad := map[string]Binding{
		"empty port":      binding("", "52:54:00:aa:00:01"),
		"long port":       binding("a-very-long-interface", "52:54:00:aa:00:01"),
		"slash":           binding("a/b", "52:54:00:aa:00:01"),
		"bad mac":         binding("vnet9", "52:54:00:aa:00"),
		"multicast mac":   binding("vnet9", "01:00:5e:00:00:01"),
		"zero mac":        binding("vnet9", "00:00:00:00:00:00"),
		"eui64 mac":       binding("vnet9", "52:54:00:aa:00:01:02:03"),
		"multicast ipv4":  binding("vnet9", "52:54:00:aa:00:09", "224.0.0.1"),
		"unspecified":     binding("vnet9", "52:54:00:aa:00:09", "0.0.0.0"),
		"v4-mapped as v6": {Port: "vnet9", MAC: "52:54:00:aa:00:09", Class: 2, IPv6: []netip.Addr{netip.MustParseAddr("::ffff:10.0.0.1")}},
		"v6 in v4":        {Port: "vnet9", MAC: "52:54:00:aa:00:09", Class: 2, IPv4: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		"class 0":         {Port: "vnet9", MAC: "52:54:00:aa:00:09", Class: 0},
		"class 4":         {Port: "vnet9", MAC: "52:54:00:aa:00:09", Class: 4},
		"inbound":         {Port: "vnet9", MAC: "52:54:00:aa:00:09", Class: 3, Inbound: "open"},
	}
	for name, b := range bad {
		if _, err := s.Put(b, t0); err == nil {
			t.Errorf("%s: Put accepted %+v", name, b)
		}
	}
	if _, err := s.Delete("nope", t0); err == nil {
		t.Error("Delete of an unknown port")
	}
	if _, err := s.SetQuarantine("nope", true, "", t0); err == nil {
		t.Error("SetQuarantine of an unknown port")
	}
	after, _ := os.ReadFile(filepath.Join(dir, Dir, PortsFile))
	if string(after) != string(before) || len(events(t, dir)) != nEvents {
		t.Fatal("a refused change changed the state")
	}
	// A corrupt bindings file is an error, never "no ports".
	os.WriteFile(filepath.Join(dir, Dir, PortsFile), []byte("{"), 0o600)
	if _, err := s.Bindings(); err == nil {
		t.Fatal("Bindings of a corrupt file")
	}
}

func TestConcurrentPuts(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(dir)
			if err != nil {
				t.Error(err)
				return
			}
			b := binding("vnet"+string(rune('a'+i)), "52:54:00:aa:00:0"+string(rune('1'+i%9)), "10.0.1.1")
			if _, err := s.Put(b, t0); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s, _ := Open(dir)
	if bs, err := s.Bindings(); err != nil || len(bs) != 20 {
		t.Fatalf("after 20 concurrent puts: %d bindings, %v", len(bs), err)
	}
}

func FuzzBindings(f *testing.F) {
	f.Add([]byte(`{"ports":[{"port":"vnet0","vm":"a","mac":"52:54:00:aa:00:01","ipv4":["10.0.0.2"],"class":2,"since":"2026-11-26T10:00:00Z"}]}`))
	f.Add([]byte(`{"ports":[{"port":"vnet0","mac":"01:00:5e:00:00:01","class":9}]}`))
	f.Add([]byte(`{"ports":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, Dir, PortsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		bs, err := s.Bindings()
		if err != nil {
			return
		}
		for i := range bs {
			if err := bs[i].Validate(); err != nil {
				t.Fatalf("Bindings returned an invalid binding: %v", err)
			}
		}
	})
}

func TestPlans(t *testing.T) {
	s, _ := Open(t.TempDir())
	p := Plan{UUID: "0F0E0D0C-0B0A-0908-0706-050403020100", Domain: "vm", Class: 3, Profile: "dmz", Inbound: "deny", RatePPS: 100,
		AllowedAddresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Decided: t0}
	if err := s.SavePlan(p); err != nil {
		t.Fatal(err)
	}
	got, err := s.Plan("0f0e0d0c-0b0a-0908-0706-050403020100")
	if err != nil || got.Profile != "dmz" || got.RatePPS != 100 || len(got.AllowedAddresses) != 1 {
		t.Fatalf("Plan = %+v, %v", got, err)
	}
	for _, bad := range []Plan{{UUID: "../../etc/passwd", Class: 2}, {UUID: "0f0e0d0c-0b0a-0908-0706-05040302010", Class: 2}, {UUID: p.UUID, Class: 0}} {
		if err := s.SavePlan(bad); err == nil {
			t.Errorf("SavePlan(%+v) accepted", bad)
		}
	}
	if _, err := s.Plan("../../x"); err == nil {
		t.Error("Plan of a bad UUID")
	}
	if err := s.DeletePlan(p.UUID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Plan(p.UUID); err == nil {
		t.Error("Plan after DeletePlan")
	}
}
