// Command httpsd is a tiny HTTPS static file server for vmtrust's benchmarks
// (bench/cache-image.sh). It is not part of vmtrust and not for production.
//
//	httpsd -dir DIR -addr 127.0.0.1:8443 -cert server.pem -key server.key
//
// It serves the regular files directly under DIR (no listings, no
// subdirectories, no dot files) with http.ServeContent, so Range, HEAD,
// Last-Modified and If-Modified-Since work as on a real web server. Only
// HTTP/1.1 is offered (no h2 in ALPN), which is what vmtrust's fetcher
// speaks, so every client in a benchmark uses the same protocol. TLS 1.2 or
// later; the cipher suite is whatever the client and Go agree on.
//
// Once it listens it prints "httpsd: listening on https://ADDR/" on stderr;
// with -ready FILE it also writes the address to FILE (use -addr
// 127.0.0.1:0 for a free port). With -v it logs one line per request on
// stderr: client, method, path, Range, User-Agent, TLS version and cipher
// suite. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", ".", "directory whose files are served")
	addr := flag.String("addr", "127.0.0.1:8443", "listen address")
	certFile := flag.String("cert", "", "server certificate chain (PEM)")
	keyFile := flag.String("key", "", "server private key (PEM)")
	ready := flag.String("ready", "", "write the listening address to this file once ready")
	verbose := flag.Bool("v", false, "log every request")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("httpsd: ")
	if *certFile == "" || *keyFile == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	root, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		log.Fatalf("-dir %s is not a directory", root)
	}
	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatal(err)
	}

	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if *verbose {
			cipher := ""
			if r.TLS != nil {
				cipher = tls.VersionName(r.TLS.Version) + " " + tls.CipherSuiteName(r.TLS.CipherSuite)
			}
			log.Printf("%s %s %s range=%q ua=%q tls=%q", r.RemoteAddr, r.Method, r.URL.Path, r.Header.Get("Range"), r.UserAgent(), cipher)
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
			http.NotFound(w, r)
			return
		}
		f, err := os.Open(filepath.Join(root, name))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, name, fi.ModTime(), f)
	})

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          log.Default(),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"http/1.1"},
		},
		// A non-nil empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	bound := ln.Addr().String()
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(bound+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Fprintf(os.Stderr, "httpsd: listening on https://%s/ serving %s\n", bound, root)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}
