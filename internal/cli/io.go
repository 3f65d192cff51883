package cli

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// readFileBounded reads a named file (not standard input), refusing more
// than max bytes.
func readFileBounded(path string, max int64) ([]byte, error) {
	if path == "-" {
		return nil, usageErr(fmt.Errorf("standard input (-) is not accepted here; name a file"))
	}
	return readBounded(nil, path, max)
}

// readUpTo reads at most max+1 bytes of a file or stdin ("-") and leaves it
// to the parser to reject what is over max, with its own error class.
func readUpTo(stdin io.Reader, path string, max int64) ([]byte, error) {
	return readAtMost(stdin, path, max+1)
}

func readBounded(stdin io.Reader, path string, max int64) ([]byte, error) {
	b, err := readAtMost(stdin, path, max+1)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, inputErr(fmt.Errorf("%s is larger than the limit of %d bytes", path, max))
	}
	return b, nil
}

// readAtMost reads up to limit bytes of a file or stdin ("-").
func readAtMost(stdin io.Reader, path string, limit int64) ([]byte, error) {
	var r io.Reader
	size := int64(512)
	if path == "-" {
		r = stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, inputErr(err)
		}
		defer f.Close()
		r = f
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = min(fi.Size(), limit) + 1
		}
	}
	// Read into a buffer of the file's size: io.ReadAll's doubling would
	// copy a large list several times.
	buf := bytes.NewBuffer(make([]byte, 0, size))
	if _, err := buf.ReadFrom(io.LimitReader(r, limit)); err != nil {
		return nil, inputErr(fmt.Errorf("reading %s: %w", path, err))
	}
	return buf.Bytes(), nil
}

// writeOutput writes data to path atomically (a temporary file renamed into
// place), or to stdout for "-".
func writeOutput(g *Globals, path string, data []byte, perm os.FileMode) error {
	if path == "-" || path == "" {
		_, err := g.Stdout.Write(data)
		return err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return inputErr(fmt.Errorf("writing %s: %w", path, err))
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// loadCerts reads every CERTIFICATE block of a PEM file.
func loadCerts(path string) ([]*x509.Certificate, error) {
	b, err := readFileBounded(path, 1<<20)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, inputErr(fmt.Errorf("certificate %s: %w", path, err))
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, inputErr(fmt.Errorf("%s: no PEM CERTIFICATE block", path))
	}
	return certs, nil
}

func loadCert(path string) (*x509.Certificate, error) {
	certs, err := loadCerts(path)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// loadKey reads an unencrypted PEM private key (PKCS#8, PKCS#1 or SEC 1).
func loadKey(path string) (crypto.Signer, error) {
	b, err := readFileBounded(path, 1<<20)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, inputErr(fmt.Errorf("%s: no PEM private key block", path))
		}
		var k any
		switch blk.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, withHint(inputErr(fmt.Errorf("%s: the key is encrypted", path)),
				"decrypt it to a file only root can read: openssl pkey -in KEY -out KEY.plain")
		default:
			continue
		}
		if err != nil {
			return nil, inputErr(fmt.Errorf("private key %s: %w", path, err))
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return nil, inputErr(errors.New("Ed25519 keys cannot sign S/MIME image lists that OpenSSL-based tools verify; use RSA or ECDSA"))
		}
		return nil, inputErr(fmt.Errorf("%s: unsupported key type %T", path, k))
	}
}
