package vmtest

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLibvirtBoot boots real TCG guests under a private libvirtd: the
// guest prints its marker on the serial console, and virsh domstate agrees.
func TestLibvirtBoot(t *testing.T) {
	if testing.Short() {
		t.Skip("boots real guests; not with -short")
	}
	env := Libvirt(t)
	tests := []struct {
		name      string
		hold      bool
		wantState string // after the marker, once settled
	}{
		{name: "poweroff", hold: false, wantState: "shut off"},
		{name: "hold", hold: true, wantState: "running"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dom := "vmtrust-boot-" + tc.name
			disk := filepath.Join(t.TempDir(), "overlay.qcow2")
			base := filepath.Join(env.KitDir, "root.qcow2")
			if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", disk).CombinedOutput(); err != nil {
				t.Fatalf("qemu-img create: %v: %s", err, out)
			}
			xmlDoc := env.DomainXML(dom, disk)
			if tc.hold {
				xmlDoc = env.DomainXMLHold(dom, disk)
			}
			xmlPath := filepath.Join(t.TempDir(), dom+".xml")
			if err := os.WriteFile(xmlPath, []byte(xmlDoc), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, _, err := env.Virsh("define", xmlPath); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				env.Virsh("destroy", dom) // may already be off
				if _, _, err := env.Virsh("undefine", dom); err != nil {
					t.Errorf("undefine: %v", err)
				}
			})
			begin := time.Now()
			if _, _, err := env.Virsh("start", dom); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			if _, err := env.WaitMarker(ctx, dom); err != nil {
				t.Fatal(err)
			}
			t.Logf("virsh start to marker: %v (libvirtd start: %v)", time.Since(begin).Round(time.Millisecond), env.StartTime.Round(time.Millisecond))
			var state string
			for range 100 { // up to 10 s for the guest to power off
				out, _, err := env.Virsh("domstate", dom)
				if err != nil {
					t.Fatal(err)
				}
				if state = strings.TrimSpace(out); state == tc.wantState {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if state != tc.wantState {
				t.Fatalf("virsh domstate %s = %q, want %q", dom, state, tc.wantState)
			}
		})
	}
}

// TestLibvirtHook: a hook given to LibvirtWithHook is the instance's
// private /etc/libvirt/hooks/qemu, libvirtd runs it at prepare, its refusal
// stops the start with its message, and the host's hooks directory is
// untouched.
func TestLibvirtHook(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real libvirtd; not with -short")
	}
	hook := filepath.Join(t.TempDir(), "qemu")
	const script = "#!/bin/sh\n" +
		"cat >/dev/null\n" +
		"if [ \"$2\" = prepare ]; then echo \"vmtrust-test-hook refuses $1\" >&2; exit 1; fi\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	hostHookBefore, hostErr := os.ReadFile("/etc/libvirt/hooks/qemu")
	env := LibvirtWithHook(t, hook)
	if _, err := os.Stat(filepath.Join(env.InstanceDir, "etc", "hooks", "qemu")); err != nil {
		t.Fatalf("private hook: %v", err)
	}
	const dom = "vmtrust-hooked"
	xmlPath := filepath.Join(t.TempDir(), dom+".xml")
	if err := os.WriteFile(xmlPath, []byte(env.DomainXML(dom, filepath.Join(env.KitDir, "root.qcow2"))), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.Virsh("define", xmlPath); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Virsh("undefine", dom) })
	_, stderr, err := env.Virsh("start", dom)
	if want := "vmtrust-test-hook refuses " + dom; err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("virsh start %s = %v, stderr %q, want a refusal naming %q", dom, err, stderr, want)
	}
	after, afterErr := os.ReadFile("/etc/libvirt/hooks/qemu")
	if string(after) != string(hostHookBefore) || (hostErr == nil) != (afterErr == nil) {
		t.Fatalf("the host's /etc/libvirt/hooks/qemu changed")
	}
}

func TestParseStartOutput(t *testing.T) {
	const (
		ns   = "vmtrust-boot-0123abcd"
		sock = "/run/vmtrust/libvirt/" + ns + "/sock/libvirt-sock"
		uri  = uriPrefix + sock
		good = "VMTRUST_LIBVIRT_URI=" + uri + "\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n"
	)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "valid", in: good},
		{name: "valid other dir", in: "VMTRUST_LIBVIRT_URI=" + uriPrefix + "/tmp/x/" + ns + sockSuffix + "\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n"},
		{name: "empty", in: "", wantErr: true},
		{name: "no final newline", in: strings.TrimSuffix(good, "\n"), wantErr: true},
		{name: "lines swapped", in: "VMTRUST_LIBVIRT_NETNS=" + ns + "\nVMTRUST_LIBVIRT_URI=" + uri + "\n", wantErr: true},
		{name: "extra line", in: good + "x\n", wantErr: true},
		{name: "crlf", in: strings.ReplaceAll(good, "\n", "\r\n"), wantErr: true},
		{name: "netns without hex", in: strings.ReplaceAll(good, "0123abcd", "zzzzzzzz"), wantErr: true},
		{name: "netns foreign prefix", in: strings.ReplaceAll(good, "vmtrust-", "other-"), wantErr: true},
		{name: "socket of another netns", in: "VMTRUST_LIBVIRT_URI=" + uriPrefix + "/run/vmtrust/libvirt/vmtrust-x-00000000/sock/libvirt-sock\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n", wantErr: true},
		{name: "relative socket", in: "VMTRUST_LIBVIRT_URI=" + uriPrefix + "run/" + ns + sockSuffix + "\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n", wantErr: true},
		{name: "unclean socket", in: "VMTRUST_LIBVIRT_URI=" + uriPrefix + "/run/../etc/" + ns + sockSuffix + "\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n", wantErr: true},
		{name: "socket with query", in: "VMTRUST_LIBVIRT_URI=" + uri + "&x=1\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n", wantErr: true},
		{name: "remote uri", in: strings.Replace(good, "qemu+unix:///", "qemu+ssh://host/", 1), wantErr: true},
		{name: "session uri", in: strings.Replace(good, "/system?", "/session?", 1), wantErr: true},
		{name: "too long", in: good + strings.Repeat("x", maxScriptOutput), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gotURI, gotNS, err := parseStartOutput([]byte(tc.in))
			if tc.wantErr {
				if err == nil || gotURI != "" || gotNS != "" {
					t.Fatalf("parseStartOutput(%q) = %q, %q, %v, want an error and no results", tc.in, gotURI, gotNS, err)
				}
				return
			}
			if err != nil || !strings.HasPrefix(gotURI, uriPrefix) || gotNS != ns {
				t.Fatalf("parseStartOutput(%q) = %q, %q, %v, want a uri and %q", tc.in, gotURI, gotNS, err, ns)
			}
		})
	}
}

func FuzzParseStartOutput(f *testing.F) {
	f.Add([]byte("VMTRUST_LIBVIRT_URI=qemu+unix:///system?socket=/run/vmtrust/libvirt/vmtrust-a-00000000/sock/libvirt-sock\nVMTRUST_LIBVIRT_NETNS=vmtrust-a-00000000\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		uri, ns, err := parseStartOutput(in)
		if err != nil {
			if uri != "" || ns != "" {
				t.Fatalf("parseStartOutput(%q) = %q, %q, %v: results with an error", in, uri, ns, err)
			}
			return
		}
		if want := "VMTRUST_LIBVIRT_URI=" + uri + "\nVMTRUST_LIBVIRT_NETNS=" + ns + "\n"; string(in) != want {
			t.Fatalf("parseStartOutput(%q) accepted a non-canonical form of %q", in, want)
		}
	})
}

func TestLibvirtMissing(t *testing.T) {
	all := func(string) (string, error) { return "/x", nil }
	none := func(string) (string, error) { return "", errors.New("not found") }
	without := func(cmd string) func(string) (string, error) {
		return func(c string) (string, error) {
			if c == cmd {
				return "", errors.New("not found")
			}
			return "/x", nil
		}
	}
	tests := []struct {
		name string
		euid int
		look func(string) (string, error)
		want []string // substrings of the message; nil: no message
	}{
		{name: "ready", euid: 0, look: all},
		{name: "not root", euid: 1000, look: all, want: []string{"needs root"}},
		{name: "nothing installed", euid: 0, look: none, want: []string{"libvirt-daemon-system", "libvirt-clients", "qemu-system-x86", "busybox-static"}},
		{name: "no busybox", euid: 0, look: without("/bin/busybox"), want: []string{"busybox-static"}},
		{name: "no qemu", euid: 0, look: without("qemu-system-x86_64"), want: []string{"qemu-system-x86"}},
		{name: "no virsh", euid: 0, look: without("virsh"), want: []string{"libvirt-clients"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := libvirtMissing(tc.euid, tc.look)
			if tc.want == nil && got != "" {
				t.Fatalf("libvirtMissing() = %q, want \"\"", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("libvirtMissing() = %q, want it to name %q", got, w)
				}
			}
		})
	}
}

func TestDomainXML(t *testing.T) {
	env := &LibvirtEnv{KitDir: "/kit", ConsoleDir: "/c"}
	tests := []struct {
		name, dom, disk string
		hold            bool
		wantGuest       string
	}{
		{name: "plain", dom: "vm1", disk: "/d/a.qcow2", wantGuest: "vm1"},
		{name: "hold", dom: "vm1", disk: "/d/a.qcow2", hold: true, wantGuest: "vm1"},
		{name: "markup in name", dom: "a<b>&'c\"", disk: "/d/a.qcow2", wantGuest: "a_b___c_"},
		{name: "markup in path", dom: "vm", disk: "/d/'x'&<y>.qcow2", wantGuest: "vm"},
		{name: "spaces in name", dom: "a b vmtrust.hold=1", disk: "/d", wantGuest: "a_b_vmtrust.hold_1"},
		{name: "empty name", dom: "", disk: "/d", wantGuest: "_"},
		{name: "long name", dom: strings.Repeat("n", 100), disk: "/d", wantGuest: strings.Repeat("n", 63)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := env.DomainXML(tc.dom, tc.disk)
			if tc.hold {
				doc = env.DomainXMLHold(tc.dom, tc.disk)
			}
			var d struct {
				Type    string `xml:"type,attr"`
				Name    string `xml:"name"`
				Cmdline string `xml:"os>cmdline"`
				Disk    struct {
					Source struct {
						File string `xml:"file,attr"`
					} `xml:"source"`
				} `xml:"devices>disk"`
				Serial struct {
					Source struct {
						Path string `xml:"path,attr"`
					} `xml:"source"`
				} `xml:"devices>serial"`
			}
			if err := xml.Unmarshal([]byte(doc), &d); err != nil {
				t.Fatalf("DomainXML(%q) is not XML: %v", tc.dom, err)
			}
			if d.Type != "qemu" || d.Name != tc.dom || d.Disk.Source.File != tc.disk || d.Serial.Source.Path != env.ConsoleLog(tc.dom) {
				t.Fatalf("DomainXML(%q, %q) = type %q name %q disk %q serial %q", tc.dom, tc.disk, d.Type, d.Name, d.Disk.Source.File, d.Serial.Source.Path)
			}
			if got := GuestName(tc.dom); got != tc.wantGuest {
				t.Fatalf("GuestName(%q) = %q, want %q", tc.dom, got, tc.wantGuest)
			}
			fields := strings.Fields(d.Cmdline)
			if got, want := strings.Contains(" "+d.Cmdline+" ", " vmtrust.hold=1 "), tc.hold; got != want || fields[len(fields)-1-b2i(tc.hold)] != "vmtrust.name="+tc.wantGuest {
				t.Fatalf("cmdline = %q, want vmtrust.name=%s and hold %v", d.Cmdline, tc.wantGuest, tc.hold)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestInstanceName(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "simple", in: "TestBoot", want: "testboot"},
		{name: "subtest", in: "TestHook/refuses_unknown", want: "testhook-refuses"},
		{name: "only punctuation", in: "/__/", want: "test"},
		{name: "empty", in: "", want: "test"},
		{name: "leading punctuation", in: "--x", want: "x"},
		{name: "trailing cut at dash", in: "abcdefghijklmno_p", want: "abcdefghijklmno"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := instanceName(tc.in); got != tc.want {
				t.Fatalf("instanceName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDomainXMLNet(t *testing.T) {
	env := &LibvirtEnv{KitDir: "/kit", ConsoleDir: "/c"}
	const md = `<metadata><x:net xmlns:x="https://vmtrust.dev/xmlns/net/1"/></metadata>`
	tests := []struct {
		name, mac, bridge string
		ips               []string
		script, errHas    string
	}{
		{name: "full", mac: "52:54:00:00:00:01", bridge: "br0", ips: []string{"10.76.0.5/24", "fd76::5/64"}, script: "echo 'a&b' <x\n"},
		{name: "no script, no address", mac: "52:54:00:00:00:01", bridge: "br0"},
		{name: "bad mac", mac: "52:54:00:00:00", bridge: "br0", errHas: "mac"},
		{name: "bad bridge", mac: "52:54:00:00:00:01", bridge: "br0' x='", errHas: "not an interface name"},
		{name: "long bridge", mac: "52:54:00:00:00:01", bridge: strings.Repeat("b", 16), errHas: "not an interface name"},
		{name: "address without prefix", mac: "52:54:00:00:00:01", bridge: "br0", ips: []string{"10.76.0.5"}, errHas: "address"},
		{name: "address with space", mac: "52:54:00:00:00:01", bridge: "br0", ips: []string{"10.76.0.5/24 vmtrust.hold=0"}, errHas: "address"},
		{name: "script too long", mac: "52:54:00:00:00:01", bridge: "br0", script: strings.Repeat("x", 1600), errHas: "more than 2047"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := env.DomainXMLNet("vm1", "/d/a.qcow2", tc.mac, tc.bridge, tc.ips, tc.script, md)
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) || doc != "" {
					t.Fatalf("DomainXMLNet = %q, %v; want no XML and an error with %q", doc, err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("DomainXMLNet: %v", err)
			}
			var d struct {
				Name     string `xml:"name"`
				Metadata struct {
					Inner string `xml:",innerxml"`
				} `xml:"metadata"`
				Cmdline string `xml:"os>cmdline"`
				Disk    struct {
					Transient *struct{} `xml:"transient"`
				} `xml:"devices>disk"`
				Iface struct {
					Type string `xml:"type,attr"`
					MAC  struct {
						Address string `xml:"address,attr"`
					} `xml:"mac"`
					Source struct {
						Bridge string `xml:"bridge,attr"`
					} `xml:"source"`
					Model struct {
						Type string `xml:"type,attr"`
					} `xml:"model"`
				} `xml:"devices>interface"`
			}
			if err := xml.Unmarshal([]byte(doc), &d); err != nil {
				t.Fatalf("DomainXMLNet is not XML: %v\n%s", err, doc)
			}
			if d.Name != "vm1" || d.Iface.Type != "bridge" || d.Iface.MAC.Address != tc.mac || d.Iface.Source.Bridge != tc.bridge || d.Iface.Model.Type != "virtio" || d.Disk.Transient == nil {
				t.Fatalf("DomainXMLNet = %+v, want vm1 with a transient disk and a virtio interface %s on %s", d, tc.mac, tc.bridge)
			}
			if !strings.Contains(doc, md) {
				t.Fatalf("DomainXMLNet lacks the metadata %s:\n%s", md, doc)
			}
			args := map[string]string{}
			for _, f := range strings.Fields(d.Cmdline) {
				k, v, _ := strings.Cut(f, "=")
				args[k] = v
			}
			if args["vmtrust.net"] != "1" || args["vmtrust.hold"] != "1" || args["vmtrust.name"] != "vm1" || args["vmtrust.ip"] != strings.Join(tc.ips, ",") {
				t.Fatalf("cmdline = %q, want vmtrust.net=1, vmtrust.hold=1, vmtrust.name=vm1 and vmtrust.ip=%s", d.Cmdline, strings.Join(tc.ips, ","))
			}
			got, err := base64.StdEncoding.DecodeString(args["vmtrust.run"])
			if _, ok := args["vmtrust.run"]; ok != (tc.script != "") || err != nil || string(got) != tc.script {
				t.Fatalf("cmdline vmtrust.run decodes to %q, %v; want %q", got, err, tc.script)
			}
		})
	}
}
