package scanner

import (
	"os"
	"strings"
	"testing"
)

// A real nmap report of a loopback redis and a closed port.
func TestFactsFromNmap(t *testing.T) {
	data, err := os.ReadFile("testdata/nmap/loopback-redis.xml")
	if err != nil {
		t.Fatal(err)
	}
	run, err := ParseNmapXML(data)
	if err != nil {
		t.Fatal(err)
	}
	facts := FactsFromNmap(run)
	if len(facts) != 1 || facts[0].Addr != "127.0.0.1" {
		t.Fatalf("facts = %+v, want one host 127.0.0.1", facts)
	}
	if len(facts[0].Ports) != 1 {
		t.Fatalf("closed port kept: %+v", facts[0].Ports)
	}
	p := facts[0].Ports[0]
	if p.Port != 6379 || p.Proto != "tcp" || p.Attrs["service"] != "redis" || p.Attrs["version"] != "7.0.15" {
		t.Errorf("port facts = %+v", p)
	}
	if c := p.Attrs["cpe"].([]string); len(c) != 1 || !strings.HasPrefix(c[0], "cpe:/a:redislabs:redis") {
		t.Errorf("cpe = %v", c)
	}
}

func TestNmapArgs(t *testing.T) {
	job := NmapJob{Targets: []string{"10.0.0.0/24"}, TCPPorts: []int{22, 443}, UDPPorts: []int{161}, Rate: 100}
	priv := (&Nmap{Privileged: true}).Args(job)
	got := strings.Join(priv, " ")
	for _, want := range []string{"-sS", "-sU", "-sV", "-n", "--max-rate 100", "-p T:22,443,U:161", "10.0.0.0/24"} {
		if !strings.Contains(got, want) {
			t.Errorf("privileged args %q lack %q", got, want)
		}
	}
	if r := strings.Join((&Nmap{}).Args(NmapJob{TCPPorts: []int{1, 2, 3, 5, 7, 8}}), " "); !strings.Contains(r, "-p 1-3,5,7-8") {
		t.Errorf("consecutive ports not folded into ranges: %q", r)
	}
	unpriv := strings.Join((&Nmap{}).Args(job), " ")
	if strings.Contains(unpriv, "-sU") || strings.Contains(unpriv, "-sS") || !strings.Contains(unpriv, "-sT") || !strings.Contains(unpriv, "-p 22,443 ") {
		t.Errorf("unprivileged args %q: want a connect scan without UDP", unpriv)
	}
}

func TestServiceNameNormalised(t *testing.T) {
	for in, want := range map[string]string{"mosquitto version 2.0.11": "mqtt", "mqtt": "mqtt", "ssh": "ssh", "": ""} {
		if got := serviceName(in); got != want {
			t.Errorf("serviceName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseNmapServices(t *testing.T) {
	in := "# comment\nssh\t22/tcp\t0.182286\t# Secure Shell\nhttp\t80/tcp\t0.484143\nsnmp\t161/udp\t0.433467\ntelnet\t23/tcp\t0.221265\n"
	got, err := parseNmapServices(strings.NewReader(in), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != 23 || got[1] != 80 {
		t.Errorf("top 2 tcp = %v, want [23 80]", got)
	}
}

func TestProgressWriter(t *testing.T) {
	var last NmapProgress
	w := &progressWriter{fn: func(p NmapProgress) { last = p }}
	w.Write([]byte(`<taskprogress task="SYN Stealth Scan" time="1" percent="42.50" remaining="3" etc="4"/>` + "\n<host>\n</ho"))
	w.Write([]byte("st>\n"))
	if last.Task != "SYN Stealth Scan" || last.Percent != 42.5 || last.HostsDone != 1 {
		t.Errorf("progress = %+v", last)
	}
}

// The nmap XML adapter must never panic, whatever nmap (or an attacker
// answering its probes) puts in the report.
func FuzzNmapXML(f *testing.F) {
	seed, _ := os.ReadFile("testdata/nmap/loopback-redis.xml")
	f.Add(seed)
	f.Add([]byte(`<nmaprun><host><status state="up"/><address addr="10.0.0.1" addrtype="ipv4"/><ports><port protocol="udp" portid="161"><state state="open|filtered"/><service name="snmp" product="net-snmp"/></port></ports></host></nmaprun>`))
	f.Add([]byte(`<nmaprun><host><status state="up"/></host></nmaprun>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		run, err := ParseNmapXML(data)
		if err != nil {
			return
		}
		for _, h := range FactsFromNmap(run) {
			if h.Addr == "" {
				t.Fatal("host without address")
			}
			for _, p := range h.Ports {
				if p.Attrs == nil {
					t.Fatal("port without attributes")
				}
			}
		}
	})
}
