package mtls_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gtask/gtask/internal/mtls"
	"github.com/gtask/gtask/internal/mtls/mtlstest"
)

// TestFileSets walks every subset of each side's files: none is plaintext
// (a nil config), all is TLS, anything between is an error naming exactly
// the missing files.
func TestFileSets(t *testing.T) {
	server := mtlstest.NewServerCert(t, "server")
	client := mtlstest.NewClientCert(t, "client")
	sides := []struct {
		name   string
		load   func(dir string) (*tls.Config, error)
		files  []string
		pemFor map[string][]byte
	}{{
		name:  "server",
		load:  mtls.ServerConfig,
		files: []string{mtls.ServerKeyFile, mtls.ServerCertFile, mtls.ClientCertFile},
		pemFor: map[string][]byte{
			mtls.ServerKeyFile: server.KeyPEM, mtls.ServerCertFile: server.CertPEM, mtls.ClientCertFile: client.CertPEM,
		},
	}, {
		name:  "client",
		load:  mtls.ClientConfig,
		files: []string{mtls.ClientKeyFile, mtls.ClientCertFile, mtls.ServerCertFile},
		pemFor: map[string][]byte{
			mtls.ClientKeyFile: client.KeyPEM, mtls.ClientCertFile: client.CertPEM, mtls.ServerCertFile: server.CertPEM,
		},
	}}
	for _, side := range sides {
		for mask := range 1 << len(side.files) {
			var present, missing []string
			for i, f := range side.files {
				if mask&(1<<i) != 0 {
					present = append(present, f)
				} else {
					missing = append(missing, f)
				}
			}
			t.Run(fmt.Sprintf("%s/present=%v", side.name, present), func(t *testing.T) {
				dir := t.TempDir()
				for _, f := range present {
					require.NoError(t, os.WriteFile(filepath.Join(dir, f), side.pemFor[f], 0o600))
				}
				cfg, err := side.load(dir)
				switch len(present) {
				case 0:
					require.NoError(t, err)
					assert.Nil(t, cfg, "no files means plaintext")
				case len(side.files):
					require.NoError(t, err)
					require.NotNil(t, cfg)
					assert.Len(t, cfg.Certificates, 1)
				default:
					require.ErrorIs(t, err, mtls.ErrPartial)
					assert.Nil(t, cfg)
					msg := err.Error()
					assert.Contains(t, msg, dir)
					_, missingPart, ok := strings.Cut(msg, " but ")
					require.True(t, ok, "the error separates present and missing files: %s", msg)
					for _, f := range missing {
						assert.Contains(t, missingPart, f, "a missing file is named")
					}
					for _, f := range present {
						assert.NotContains(t, missingPart, f, "a present file is not called missing")
					}
				}
			})
		}
	}
}

// TestOtherSidesFilesIgnored: a dir may hold both sides' files (one work dir
// for a local host and app); each side reads only its own.
func TestOtherSidesFilesIgnored(t *testing.T) {
	dir := t.TempDir()
	server := mtlstest.NewServerCert(t, "server")
	client := mtlstest.NewClientCert(t, "client")
	mtlstest.WriteServerFiles(t, dir, server, client)
	mtlstest.WriteClientFiles(t, dir, client, server)
	srv, err := mtls.ServerConfig(dir)
	require.NoError(t, err)
	cli, err := mtls.ClientConfig(dir)
	require.NoError(t, err)
	srvErr, cliErr := handshake(t, srv, cli)
	assert.NoError(t, srvErr)
	assert.NoError(t, cliErr)
}

func TestBadFiles(t *testing.T) {
	server := mtlstest.NewServerCert(t, "server")
	client := mtlstest.NewClientCert(t, "client")
	other := mtlstest.NewClientCert(t, "other")
	tests := []struct {
		name    string
		load    func(string) (*tls.Config, error)
		write   func(dir string)
		wantErr string
	}{{
		name: "server cert is not PEM",
		load: mtls.ServerConfig,
		write: func(dir string) {
			mtlstest.WriteServerFiles(t, dir, mtlstest.Cert{CertPEM: []byte("junk"), KeyPEM: server.KeyPEM}, client)
		},
		wantErr: "server key pair",
	}, {
		name: "server key does not match its cert",
		load: mtls.ServerConfig,
		write: func(dir string) {
			mtlstest.WriteServerFiles(t, dir, mtlstest.Cert{CertPEM: server.CertPEM, KeyPEM: other.KeyPEM}, client)
		},
		wantErr: "server key pair",
	}, {
		name: "client cert to accept is not PEM",
		load: mtls.ServerConfig,
		write: func(dir string) {
			mtlstest.WriteServerFiles(t, dir, server, mtlstest.Cert{CertPEM: []byte("junk")})
		},
		wantErr: mtls.ClientCertFile,
	}, {
		name: "client key does not match its cert",
		load: mtls.ClientConfig,
		write: func(dir string) {
			mtlstest.WriteClientFiles(t, dir, mtlstest.Cert{CertPEM: client.CertPEM, KeyPEM: other.KeyPEM}, server)
		},
		wantErr: "client key pair",
	}, {
		name: "pinned server cert is not PEM",
		load: mtls.ClientConfig,
		write: func(dir string) {
			mtlstest.WriteClientFiles(t, dir, client, mtlstest.Cert{CertPEM: []byte("junk")})
		},
		wantErr: mtls.ServerCertFile,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.write(dir)
			cfg, err := tt.load(dir)
			require.Error(t, err)
			assert.Nil(t, cfg)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestHandshakes runs real TLS handshakes between the two configs over
// loopback TCP.
func TestHandshakes(t *testing.T) {
	server := mtlstest.NewServerCert(t, "server")
	otherServer := mtlstest.NewServerCert(t, "impostor server")
	client := mtlstest.NewClientCert(t, "client")
	otherClient := mtlstest.NewClientCert(t, "unrelated client")

	serverCfg := func(srv, acceptClient mtlstest.Cert) *tls.Config {
		dir := t.TempDir()
		mtlstest.WriteServerFiles(t, dir, srv, acceptClient)
		cfg, err := mtls.ServerConfig(dir)
		require.NoError(t, err)
		return cfg
	}
	clientCfg := func(cli, pinServer mtlstest.Cert) *tls.Config {
		dir := t.TempDir()
		mtlstest.WriteClientFiles(t, dir, cli, pinServer)
		cfg, err := mtls.ClientConfig(dir)
		require.NoError(t, err)
		return cfg
	}
	noClientCert := clientCfg(client, server)
	noClientCert.Certificates = nil

	tests := []struct {
		name string
		srv  *tls.Config
		cli  *tls.Config
		// refusedBy is "" when the handshake must succeed, else the side
		// that must refuse its peer.
		refusedBy string
		wantErr   string
	}{
		{name: "pinned pair", srv: serverCfg(server, client), cli: clientCfg(client, server)},
		{name: "wrong client certificate", srv: serverCfg(server, client), cli: clientCfg(otherClient, server), refusedBy: "server"},
		{name: "no client certificate", srv: serverCfg(server, client), cli: noClientCert, refusedBy: "server", wantErr: "certificate"},
		{name: "client pins another server", srv: serverCfg(server, client), cli: clientCfg(client, otherServer), refusedBy: "client", wantErr: "pinned " + mtls.ServerCertFile},
		{
			// The pin is on the certificate, but its use must fit too.
			name: "server presents a client-only certificate", srv: serverCfg(otherClient, client), cli: clientCfg(client, otherClient),
			refusedBy: "client", wantErr: "pinned",
		},
		{name: "client presents a server-only certificate", srv: serverCfg(server, otherServer), cli: clientCfg(otherServer, server), refusedBy: "server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srvErr, cliErr := handshake(t, tt.srv, tt.cli)
			switch tt.refusedBy {
			case "":
				assert.NoError(t, srvErr)
				assert.NoError(t, cliErr)
			case "server":
				require.Error(t, srvErr, "the server must refuse the client")
				assert.Error(t, cliErr, "the client must not get through")
				assert.Contains(t, srvErr.Error(), tt.wantErr)
			case "client":
				require.Error(t, cliErr, "the client must refuse the server")
				assert.Error(t, srvErr, "the server must not get through")
				assert.Contains(t, cliErr.Error(), tt.wantErr)
			}
		})
	}
}

// handshake connects a TLS client to a TLS server over loopback and has
// them exchange one byte, so that a refusal on either side (with TLS 1.3 the
// server judges the client's certificate after the client has finished its
// handshake) shows as an error on both.
func handshake(t *testing.T, srvCfg, cliCfg *tls.Config) (srvErr, cliErr error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer lis.Close()
	deadline := time.Now().Add(10 * time.Second)

	srvDone := make(chan error, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			srvDone <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(deadline)
		tc := tls.Server(conn, srvCfg)
		err = tc.Handshake()
		if err == nil {
			b := make([]byte, 1)
			if _, err = io.ReadFull(tc, b); err == nil {
				_, err = tc.Write(b)
			}
		}
		srvDone <- err
	}()

	conn, err := net.Dial("tcp", lis.Addr().String())
	require.NoError(t, err)
	_ = conn.SetDeadline(deadline)
	tc := tls.Client(conn, cliCfg)
	cliErr = tc.Handshake()
	if cliErr == nil {
		if _, cliErr = tc.Write([]byte{42}); cliErr == nil {
			_, cliErr = io.ReadFull(tc, make([]byte, 1))
		}
	}
	// Closing unblocks the server when the client gave up first.
	conn.Close()
	return <-srvDone, cliErr
}
