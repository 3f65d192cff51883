package fetch

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a throw-away CA issuing server certificates for 127.0.0.1.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial atomic.Int64

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1 + serial.Add(1)),
		Subject:               pkix.Name{CommonName: "fetch test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool}
}

type leafOpts struct {
	notBefore, notAfter time.Time
	dns                 []string
	ips                 []net.IP
}

func (p *testPKI) leaf(t testing.TB, o leafOpts) tls.Certificate {
	t.Helper()
	if o.notBefore.IsZero() {
		o.notBefore = time.Now().Add(-time.Hour)
	}
	if o.notAfter.IsZero() {
		o.notAfter = time.Now().Add(time.Hour)
	}
	if o.dns == nil && o.ips == nil {
		o.dns = []string{"localhost"}
		o.ips = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1 + serial.Add(1)),
		Subject:      pkix.Name{CommonName: "fetch test server"},
		NotBefore:    o.notBefore,
		NotAfter:     o.notAfter,
		DNSNames:     o.dns,
		IPAddresses:  o.ips,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serve starts an HTTPS server on 127.0.0.1 with cfg (which must carry a
// certificate); it is closed when the test ends.
func serve(t testing.TB, cfg *tls.Config, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// env is a trusted HTTPS server and a client that trusts it.
type env struct {
	pki *testPKI
	srv *httptest.Server
	c   *Client
}

func newEnv(t testing.TB, h http.Handler, o Options) *env {
	t.Helper()
	pki := newPKI(t)
	srv := serve(t, &tls.Config{Certificates: []tls.Certificate{pki.leaf(t, leafOpts{})}}, h)
	o.RootCAs = pki.pool
	c := New(o)
	t.Cleanup(c.CloseIdleConnections)
	return &env{pki: pki, srv: srv, c: c}
}

// content is deterministic test data of n bytes.
func content(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// rawResponse hijacks the connection, writes head and body as they are,
// and closes it: a server that dies mid-response.
func rawResponse(t testing.TB, w http.ResponseWriter, head string, body []byte) {
	conn, bw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	defer conn.Close()
	bw.WriteString(head)
	bw.Write(body)
	bw.Flush()
}

// truncated declares declared bytes and sends only body.
func truncated(t testing.TB, body []byte, declared int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rawResponse(t, w, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", declared), body)
	}
}

// declareOnly declares a Content-Length, sends headers, and then sends
// nothing until the client goes away: only a client that reads the body
// would wait.
func declareOnly(n int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	}
}

// endless streams chunks until the client goes away.
func endless(w http.ResponseWriter, r *http.Request) {
	chunk := bytes.Repeat([]byte("x"), 1000)
	rc := http.NewResponseController(w)
	for r.Context().Err() == nil {
		if _, err := w.Write(chunk); err != nil {
			return
		}
		rc.Flush()
	}
}

// chunked sends b in pieces without a Content-Length.
func chunked(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := data
		rc := http.NewResponseController(w)
		for len(b) > 0 {
			n := min(len(b), 1000)
			if _, err := w.Write(b[:n]); err != nil {
				return
			}
			rc.Flush()
			b = b[n:]
		}
	}
}

func status(code int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d body", code)
	}
}

// countingWriter counts what it is given.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
