package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmtrust/vmtrust/internal/fsys/fsystest"
	dt "github.com/vmtrust/vmtrust/internal/inspect/detector/detectortest"
)

func ecKey(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ecPEM(t testing.TB, k *ecdsa.PrivateKey) string {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

func pkcs8DER(t testing.TB) []byte {
	_, k, _ := ed25519.GenerateKey(rand.Reader)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// certPEM makes a self-signed certificate for key, with extra extensions.
func certPEM(t testing.TB, key crypto.Signer, cn string, ext ...pkix.Extension) string {
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		Subject:         pkix.Name{CommonName: cn, Organization: []string{"Example"}},
		NotBefore:       time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:        time.Date(2027, 3, 4, 0, 0, 0, 0, time.UTC),
		ExtraExtensions: ext,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// opensshPEM builds the armour and the start of an openssh-key-v1 body,
// enough for the cipher name (the rest is not read).
func opensshPEM(cipher string) string {
	body := []byte("openssh-key-v1\x00")
	body = binary.BigEndian.AppendUint32(body, uint32(len(cipher)))
	body = append(body, cipher...)
	body = append(body, make([]byte, 64)...)
	return string(pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: body}))
}

const puttyKey = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: eddsa-key-20250101\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIDsecretsecretsecretsecretsecretsecretsecret\n"

func proxyExt() pkix.Extension {
	return pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 14}, Critical: true, Value: []byte{0x30, 0x00}}
}

func TestDetect(t *testing.T) {
	k1, k2 := ecKey(t), ecKey(t)
	key1, cert1 := ecPEM(t, k1), certPEM(t, k1, "host.example.org")
	key2 := ecPEM(t, k2)
	proxyCert := certPEM(t, k2, "proxy", proxyExt())
	der := pkcs8DER(t)
	encKey := "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----\n"
	tests := []struct {
		name  string
		files map[string]*fsystest.MapFile
		owned []string
		want  []string
	}{
		{"unencrypted openssh key", map[string]*fsystest.MapFile{"/root/.ssh/id_ed25519": dt.Mode(opensshPEM("none"), 0o600)}, nil,
			[]string{"private-key critical /root/.ssh/id_ed25519"}},
		{"encrypted openssh key", map[string]*fsystest.MapFile{"/home/a/.ssh/id_rsa": dt.Mode(opensshPEM("aes256-ctr"), 0o600)}, nil,
			[]string{"private-key high /home/a/.ssh/id_rsa"}},
		{"encrypted PKCS#8", map[string]*fsystest.MapFile{"/srv/app/tls.key": dt.File(encKey)}, nil,
			[]string{"private-key high /srv/app/tls.key"}},
		{"snakeoil pair matched by public key", map[string]*fsystest.MapFile{
			"/etc/ssl/private/ssl-cert-snakeoil.key": dt.Mode(key1, 0o640),
			"/etc/ssl/certs/ssl-cert-snakeoil.pem":   dt.File(cert1)}, []string{},
			[]string{"private-key critical /etc/ssl/private/ssl-cert-snakeoil.key", "x509-cert-with-key high /etc/ssl/certs/ssl-cert-snakeoil.pem"}},
		{"hostcert and hostkey by name", map[string]*fsystest.MapFile{
			"/etc/grid-security/hostcert.pem": dt.File(cert1),
			"/etc/grid-security/hostkey.pem":  dt.Mode(encKey, 0o400)}, nil,
			[]string{"x509-cert-with-key high /etc/grid-security/hostcert.pem", "private-key high /etc/grid-security/hostkey.pem"}},
		{"crt and key by name", map[string]*fsystest.MapFile{
			"/etc/nginx/site.crt": dt.File(cert1),
			"/etc/nginx/site.key": dt.File(encKey)}, nil,
			[]string{"x509-cert-with-key high /etc/nginx/site.crt", "private-key high /etc/nginx/site.key"}},
		{"certificate and key in one file", map[string]*fsystest.MapFile{"/etc/pki/tls/private/server.pem": dt.File(cert1 + key1)}, nil,
			[]string{"private-key critical /etc/pki/tls/private/server.pem", "x509-cert-with-key high /etc/pki/tls/private/server.pem"}},
		{"grid proxy in /tmp", map[string]*fsystest.MapFile{"/tmp/x509up_u1000": dt.Mode(proxyCert+key2+cert1, 0o600)}, nil,
			[]string{"grid-proxy critical /tmp/x509up_u1000"}},
		{"grid proxy by extension elsewhere", map[string]*fsystest.MapFile{"/home/u/.globus/p.pem": dt.Mode(proxyCert+key2, 0o600)}, nil,
			[]string{"grid-proxy critical /home/u/.globus/p.pem"}},
		{"grid proxy path with garbage", map[string]*fsystest.MapFile{"/tmp/x509up_u0": dt.File("garbage")}, nil,
			[]string{"grid-proxy critical /tmp/x509up_u0"}},
		{"package test key is low", map[string]*fsystest.MapFile{"/usr/lib/python3/dist-packages/t/keycert.pem": dt.File(key1 + cert1)},
			[]string{"/usr/lib/python3/dist-packages/t/keycert.pem"},
			[]string{"private-key low /usr/lib/python3/dist-packages/t/keycert.pem", "x509-cert-with-key low /usr/lib/python3/dist-packages/t/keycert.pem"}},
		{"bare PKCS#8 DER", map[string]*fsystest.MapFile{"/opt/app/signing": dt.File(string(der))}, nil,
			[]string{"private-key critical /opt/app/signing"}},
		{"PuTTY key", map[string]*fsystest.MapFile{"/home/u/work.ppk": dt.File(puttyKey)}, nil,
			[]string{"private-key critical /home/u/work.ppk"}},
		{"key at the start of a large text file", map[string]*fsystest.MapFile{"/var/backups/dump.txt": dt.File(key1 + strings.Repeat("log line\n", 20000))}, nil,
			[]string{"private-key critical /var/backups/dump.txt"}},
		// Negative: look-alikes and out of scope.
		{"public key named id_rsa", map[string]*fsystest.MapFile{"/root/.ssh/id_rsa": dt.File("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC alice@laptop\n")}, nil, nil},
		{"PEM public key", map[string]*fsystest.MapFile{"/etc/app/pub.pem": dt.File("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n")}, nil, nil},
		{"CA bundle without keys", map[string]*fsystest.MapFile{"/etc/ssl/certs/ca-certificates.crt": dt.File(cert1 + certPEM(t, k2, "Other CA"))}, []string{}, nil},
		{"certificate with an unrelated key nearby", map[string]*fsystest.MapFile{"/etc/app/a.crt": dt.File(cert1), "/etc/app/b.key.pub": dt.File("ssh-ed25519 AAAA x")}, nil, nil},
		{"documentation example key", map[string]*fsystest.MapFile{"/usr/share/doc/pkg/examples/key.pem": dt.File(key1)}, nil, nil},
		{"package-manager state", map[string]*fsystest.MapFile{"/var/lib/dpkg/info/x.postinst": dt.File(key1), "/var/cache/apt/k.pem": dt.File(key1)}, []string{}, nil},
		{"package-owned certificate file not read", map[string]*fsystest.MapFile{"/usr/share/ca-certificates/x/ca.crt": dt.File(key1 + cert1)}, []string{"/usr/share/ca-certificates/x/ca.crt"}, nil},
		{"package file with a non-key name", map[string]*fsystest.MapFile{"/usr/lib/pkg/data.txt": dt.File(key1)}, []string{"/usr/lib/pkg/data.txt"}, nil},
		{"ssh host key left to sshkeys", map[string]*fsystest.MapFile{"/etc/ssh/ssh_host_ecdsa_key": dt.Mode(key1, 0o600)}, nil, nil},
		{"marker inside a script line", map[string]*fsystest.MapFile{"/usr/local/bin/gen": dt.File("#!/bin/sh\necho '-----BEGIN RSA PRIVATE KEY-----'\n")}, nil, nil},
		{"binary file with a key after its head", map[string]*fsystest.MapFile{"/usr/local/bin/tool": dt.File("\x7fELF\x00" + strings.Repeat("\x00", MaxHead) + key1)}, nil, nil},
		{"link to a key is not reported twice", map[string]*fsystest.MapFile{"/etc/k.pem": dt.Link("/srv/k.pem"), "/srv/k.pem": dt.File(encKey)}, nil,
			[]string{"private-key high /srv/k.pem"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dt.Run(t, dt.Env(fsystest.MapFS(tt.files), tt.owned), New())
			if b := dt.Briefs(got); !slices.Equal(b, tt.want) && !(len(b) == 0 && len(tt.want) == 0) {
				t.Fatalf("findings = %q, want %q", b, tt.want)
			}
			secrets := []string{"MIIBvTBXBgkqhkiG9w0BBQ0w", "AAAAC3NzaC1lZDI1NTE5AAAAIDsecret"}
			for _, s := range []string{key1, key2} {
				secrets = append(secrets, strings.Split(s, "\n")[1][:24])
			}
			dt.NoSecrets(t, got, secrets...)
			dt.Policies(t, got)
		})
	}
}

func TestReasons(t *testing.T) {
	k := ecKey(t)
	m := fsystest.MapFS{"/etc/grid-security/hostcert.pem": dt.File(certPEM(t, k, "host.example.org")), "/etc/grid-security/hostkey.pem": dt.File(ecPEM(t, k))}
	got := dt.Run(t, dt.Env(m, nil), New())
	var reasons []string
	for _, f := range got {
		reasons = append(reasons, f.Reason)
	}
	want := []string{
		"an unencrypted private key (PEM EC PRIVATE KEY)",
		"certificate \"/O=Example/CN=host.example.org\", expires 2027-03-04, with its private key in /etc/grid-security/hostkey.pem",
	}
	slices.Sort(reasons)
	if !slices.Equal(reasons, want) {
		t.Errorf("reasons = %q, want %q", reasons, want)
	}
}

func TestSniff(t *testing.T) {
	k := ecKey(t)
	key, cert := ecPEM(t, k), certPEM(t, k, "x")
	legacyEnc := "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n"
	tests := []struct {
		name string
		in   string
		want []string // "kind format encrypted"
	}{
		{"EC PEM", key, []string{"1 PEM EC PRIVATE KEY false"}},
		{"legacy encrypted RSA", legacyEnc, []string{"1 PEM RSA PRIVATE KEY true"}},
		{"certificate then key", cert + key, []string{"2 PEM CERTIFICATE false", "1 PEM EC PRIVATE KEY false"}},
		{"openssh none", opensshPEM("none"), []string{"1 OpenSSH false"}},
		{"openssh aes", opensshPEM("aes256-ctr"), []string{"1 OpenSSH true"}},
		{"truncated key still a key", "-----BEGIN DSA PRIVATE KEY-----\nMIIBuwIBAAKBgQ", []string{"1 PEM DSA PRIVATE KEY false"}},
		{"text before armour", "Bag Attributes\n    localKeyID: 01\n" + key, []string{"1 PEM EC PRIVATE KEY false"}},
		{"CRLF armour", strings.ReplaceAll(key, "\n", "\r\n"), []string{"1 PEM EC PRIVATE KEY false"}},
		{"PuTTY encrypted", strings.Replace(puttyKey, "none", "aes256-cbc", 1), []string{"1 PuTTY true"}},
		{"DER PKCS#8", string(pkcs8DER(t)), []string{"1 DER private key false"}},
		// Negative.
		{"empty", "", nil},
		{"public key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", nil},
		{"ssh public key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI x@y\n", nil},
		{"armour mid-line", "x -----BEGIN PRIVATE KEY-----\n", nil},
		{"lowercase label", "-----BEGIN private key-----\n", nil},
		{"DER that is not a key", "\x30\x03\x02\x01\x01", nil},
		{"openssh short body", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaA==\n-----END OPENSSH PRIVATE KEY-----\n", []string{"1 OpenSSH false"}},
		{"many public armours", strings.Repeat("-----BEGIN PUBLIC KEY-----\n", 1000) + key, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, o := range Sniff([]byte(tt.in)) {
				got = append(got, strings.Join([]string{string(rune('0' + o.Kind)), o.Format, map[bool]string{true: "true", false: "false"}[o.Encrypted]}, " "))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Sniff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPartners(t *testing.T) {
	tests := []struct {
		in   string
		want string // one expected partner
	}{
		{"/etc/grid-security/hostcert.pem", "/etc/grid-security/hostkey.pem"},
		{"/home/u/.globus/usercert.pem", "/home/u/.globus/userkey.pem"},
		{"/etc/nginx/site.crt", "/etc/nginx/site.key"},
		{"/etc/app/server.pem", "/etc/app/server.key"},
		{"/etc/letsencrypt/live/x/fullchain.pem", "/etc/letsencrypt/live/x/privkey.pem"},
		{"/etc/app/tls-cert.pem", "/etc/app/tls-key.pem"},
	}
	for _, tt := range tests {
		if got := partners(tt.in); !slices.Contains(got, tt.want) {
			t.Errorf("partners(%s) = %q, want it to contain %s", tt.in, got, tt.want)
		}
	}
	if got := partners("/etc/app/readme"); len(got) != 0 {
		t.Errorf("partners(/etc/app/readme) = %q, want none", got)
	}
}

// Keys written by the real tools: ssh-keygen (openssh-client) and openssl.
func TestSniffRealTools(t *testing.T) {
	for _, tool := range []struct{ cmd, pkg string }{{"ssh-keygen", "openssh-client"}, {"openssl", "openssl"}} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			msg := tool.cmd + " not found: install the Debian package " + tool.pkg
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	f := func(n string) string { return filepath.Join(dir, n) }
	run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@laptop", "-f", f("plain"))
	run("ssh-keygen", "-q", "-t", "ecdsa", "-N", "correct horse", "-f", f("enc"))
	run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f("ec.pem"))
	run("openssl", "pkcs8", "-topk8", "-in", f("ec.pem"), "-passout", "pass:pw", "-out", f("ec-enc.pem"))
	run("openssl", "pkcs8", "-topk8", "-nocrypt", "-in", f("ec.pem"), "-outform", "DER", "-out", f("ec.der"))
	run("openssl", "req", "-x509", "-key", f("ec.pem"), "-subj", "/CN=real.example", "-days", "30", "-out", f("cert.pem"))
	tests := []struct {
		file string
		want string
	}{
		{"plain", "1 OpenSSH false"},
		{"enc", "1 OpenSSH true"},
		{"ec.pem", "1 PEM PRIVATE KEY false"},
		{"ec-enc.pem", "1 PEM ENCRYPTED PRIVATE KEY true"},
		{"ec.der", "1 DER private key false"},
		{"cert.pem", "2 PEM CERTIFICATE false"},
		{"plain.pub", ""},
	}
	pubs := map[string][]byte{}
	for _, tt := range tests {
		b, err := os.ReadFile(f(tt.file))
		if err != nil {
			t.Fatal(err)
		}
		objs := Sniff(b)
		got := ""
		if len(objs) == 1 {
			got = strings.Join([]string{string(rune('0' + objs[0].Kind)), objs[0].Format, map[bool]string{true: "true", false: "false"}[objs[0].Encrypted]}, " ")
			pubs[tt.file] = objs[0].PublicKey
		}
		if got != tt.want || len(objs) > 1 {
			t.Errorf("Sniff(%s) = %+v, want %q", tt.file, objs, tt.want)
		}
	}
	if p := pubs["ec.pem"]; p == nil || string(p) != string(pubs["cert.pem"]) || string(p) != string(pubs["ec.der"]) {
		t.Errorf("public keys of ec.pem, ec.der and cert.pem differ; pairing would fail")
	}
}
