// Package mtlstest makes throw-away certificates for tests of the Task API's
// mutual TLS, and writes them under the contract's file names, so that tests
// of every package exercise the same files a real work dir holds.
//
// The certificates are self-signed leaves with no CA: the contract pins the
// peer's certificate itself, and a test that passes with a CA might hide a
// config that only works with one.
package mtlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gtask/gtask/internal/mtls"
)

// Cert is a PEM certificate and its PEM private key.
type Cert struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewServerCert returns a self-signed server certificate (ExtKeyUsageServerAuth)
// for IP 127.0.0.1 and ::1 and the name localhost.
func NewServerCert(t testing.TB, name string) Cert {
	t.Helper()
	return newCert(t, name, x509.ExtKeyUsageServerAuth)
}

// NewClientCert returns a self-signed client certificate
// (ExtKeyUsageClientAuth).
func NewClientCert(t testing.TB, name string) Cert {
	t.Helper()
	return newCert(t, name, x509.ExtKeyUsageClientAuth)
}

func newCert(t testing.TB, name string, usage x509.ExtKeyUsage) Cert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("mtlstest: key for %s: %v", name, err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("mtlstest: serial for %s: %v", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		// Backdated so that a clock a little behind still accepts it.
		NotBefore:   time.Now().Add(-time.Hour),
		NotAfter:    time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	if usage == x509.ExtKeyUsageServerAuth {
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("mtlstest: certificate for %s: %v", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("mtlstest: key for %s: %v", name, err)
	}
	return Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// WriteServerFiles writes the server's side of the contract into dir: the
// server's key and certificate and the certificate of the client it accepts.
func WriteServerFiles(t testing.TB, dir string, server, client Cert) {
	t.Helper()
	write(t, dir, mtls.ServerKeyFile, server.KeyPEM)
	write(t, dir, mtls.ServerCertFile, server.CertPEM)
	write(t, dir, mtls.ClientCertFile, client.CertPEM)
}

// WriteClientFiles writes the client's side of the contract into dir: the
// client's key and certificate and the certificate of the server it trusts.
func WriteClientFiles(t testing.TB, dir string, client, server Cert) {
	t.Helper()
	write(t, dir, mtls.ClientKeyFile, client.KeyPEM)
	write(t, dir, mtls.ClientCertFile, client.CertPEM)
	write(t, dir, mtls.ServerCertFile, server.CertPEM)
}

func write(t testing.TB, dir, name string, data []byte) {
	t.Helper()
	// 0600: the files hold private keys, and a test should not teach
	// otherwise.
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
		t.Fatalf("mtlstest: %v", err)
	}
}
