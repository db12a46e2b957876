package scanner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHAuth is what an SSH server offered a probe that never sends a secret.
type SSHAuth struct {
	Banner              string
	Password            bool
	KeyboardInteractive bool
	// NoAuth means the server let an unknown user in without any secret.
	NoAuth        bool
	HostKeyType   string
	HostKeySHA256 string
}

var errProbeOnly = errors.New("vigil probe: no credentials are sent")

// ProbeSSHAuth connects to an SSH server and learns which login methods it
// offers. It authenticates as a user that does not exist and aborts as soon
// as the server would ask for a secret, so no password is ever sent.
func ProbeSSHAuth(ctx context.Context, host string, port int, timeout time.Duration) (SSHAuth, error) {
	return ProbeSSHAuthFrom(ctx, netip.Addr{}, host, port, timeout)
}

// ProbeSSHAuthFrom is ProbeSSHAuth with the connection bound to source
// address src (invalid: the kernel chooses).
func ProbeSSHAuthFrom(ctx context.Context, src netip.Addr, host string, port int, timeout time.Duration) (SSHAuth, error) {
	var res SSHAuth
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	d := net.Dialer{Timeout: timeout, LocalAddr: localTCPAddr(src)}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return res, fmt.Errorf("ssh %s: %w", addr, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	cfg := &ssh.ClientConfig{
		User: "vigil-probe",
		Auth: []ssh.AuthMethod{
			ssh.PasswordCallback(func() (string, error) {
				res.Password = true
				return "", errProbeOnly
			}),
			ssh.KeyboardInteractive(func(string, string, []string, []bool) ([]string, error) {
				res.KeyboardInteractive = true
				return nil, errProbeOnly
			}),
		},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			res.HostKeyType = key.Type()
			res.HostKeySHA256 = ssh.FingerprintSHA256(key)
			return nil
		},
		BannerCallback: func(string) error { return nil },
		Timeout:        timeout,
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err == nil {
		// The server let an unknown user in without any secret.
		res.NoAuth = true
		res.Banner = string(c.ServerVersion())
		go ssh.DiscardRequests(reqs)
		go func() {
			for ch := range chans {
				ch.Reject(ssh.Prohibited, "probe")
			}
		}()
		c.Close()
		return res, nil
	}
	if res.HostKeyType == "" {
		if ctx.Err() != nil {
			return res, fmt.Errorf("ssh %s: %w", addr, ctx.Err())
		}
		return res, fmt.Errorf("ssh %s: handshake: %w", addr, err)
	}
	// Authentication failed as intended; the callbacks recorded what was offered.
	res.Banner = strings.TrimSpace(res.Banner)
	return res, nil
}
