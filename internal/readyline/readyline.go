// Package readyline formats and parses the one line a gtask app prints on
// stdout once it serves, so that a host that launched it knows its address
// without polling:
//
//	gtask: serving provider on 127.0.0.1:43121
//
// Apps that print nothing (apps not built with gtask) are still found by
// polling health; the line is an optimisation, never a requirement.
package readyline

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

const prefix = "gtask: serving "

// Format returns the readiness line for role ("requestor" or "provider")
// served at addr, without the trailing newline.
func Format(role, addr string) string {
	return prefix + role + " on " + addr
}

// Parse reads a readiness line (a trailing newline or carriage return is
// allowed). ok is false for any other line, which a host should pass over.
func Parse(line string) (role, addr string, ok bool) {
	line = strings.TrimRight(line, "\r\n")
	rest, found := strings.CutPrefix(line, prefix)
	if !found {
		return "", "", false
	}
	role, addr, found = strings.Cut(rest, " on ")
	if !found || role == "" || strings.ContainsAny(addr, " \t") {
		return "", "", false
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", false
	}
	// SplitHostPort accepts any port text ("http", "0", "99999"); a server
	// that serves has bound a numeric port in 1-65535.
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", "", false
	}
	return role, addr, true
}

// Dialable turns a listening address into one a client on the same machine
// can dial: an unspecified host (0.0.0.0, ::) becomes loopback.
func Dialable(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("readiness address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if ip != nil && ip.To4() == nil {
			host = "::1"
		} else {
			host = "127.0.0.1"
		}
	}
	return net.JoinHostPort(host, port), nil
}
