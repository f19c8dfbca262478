// Package mtls loads the Task API's optional mutual TLS from the PEM files
// of a work dir, as the contract names them:
//
//	server: task_api_server_key.pem, task_api_server_cert.pem, task_api_client_cert.pem
//	client: task_api_client_key.pem, task_api_client_cert.pem, task_api_server_cert.pem
//
// All of a side's files present: TLS, with the peer's certificate required
// and pinned. None present: plaintext. Some but not all: an error naming the
// missing files, never a silent fall back to plaintext.
package mtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The file names of the contract.
const (
	ServerKeyFile  = "task_api_server_key.pem"
	ServerCertFile = "task_api_server_cert.pem"
	ClientKeyFile  = "task_api_client_key.pem"
	ClientCertFile = "task_api_client_cert.pem"
)

// ErrPartial is wrapped by the error for a dir holding some but not all of a
// side's files.
var ErrPartial = errors.New("incomplete TLS file set")

// ServerConfig returns the server's TLS config for dir, or nil (plaintext)
// when dir holds none of the server's files. The config requires a client
// certificate that is exactly, or is signed by, task_api_client_cert.pem.
func ServerConfig(dir string) (*tls.Config, error) {
	paths, err := find(dir, ServerKeyFile, ServerCertFile, ClientCertFile)
	if paths == nil || err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(paths[1], paths[0])
	if err != nil {
		return nil, fmt.Errorf("TLS server key pair in %s: %w", dir, err)
	}
	clients, err := pool(paths[2])
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    clients,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// ClientConfig returns a client's TLS config for dir, or nil (plaintext)
// when dir holds none of the client's files. The server is trusted when it
// presents task_api_server_cert.pem (or a certificate it signed), whatever
// address it was dialled at: the contract pins the certificate, it does not
// name the host.
func ClientConfig(dir string) (*tls.Config, error) {
	paths, err := find(dir, ClientKeyFile, ClientCertFile, ServerCertFile)
	if paths == nil || err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(paths[1], paths[0])
	if err != nil {
		return nil, fmt.Errorf("TLS client key pair in %s: %w", dir, err)
	}
	servers, err := pool(paths[2])
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		// Host names are not part of the contract, so the standard check
		// (which needs one) is replaced by a chain check against the pinned
		// server certificate.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the server presented no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
				Roots:         servers,
				Intermediates: inter,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				return fmt.Errorf("the server's certificate is not the pinned %s: %w", ServerCertFile, err)
			}
			return nil
		},
	}, nil
}

// find returns the paths of names in dir when all exist, nil when none does,
// and an error naming the missing ones otherwise.
func find(dir string, names ...string) ([]string, error) {
	var paths, missing []string
	for _, n := range names {
		p := filepath.Join(dir, n)
		_, err := os.Stat(p)
		switch {
		case err == nil:
			paths = append(paths, p)
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, n)
		default:
			return nil, fmt.Errorf("TLS file %s: %w", p, err)
		}
	}
	switch len(missing) {
	case 0:
		return paths, nil
	case len(names):
		return nil, nil
	}
	return nil, fmt.Errorf("%w in %s: %s present but %s missing; add the missing files for TLS or remove them all for plaintext",
		ErrPartial, dir, strings.Join(paths, ", "), strings.Join(missing, ", "))
}

func pool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("TLS certificate %s: no PEM certificate in it", path)
	}
	return p, nil
}
