package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Port is one port a lab daemon listens on.
type Port struct {
	Proto  string // "tcp" or "udp"
	Number int
}

func (p Port) String() string { return fmt.Sprintf("%d/%s", p.Number, p.Proto) }

func tcp(n int) Port { return Port{"tcp", n} }
func udp(n int) Port { return Port{"udp", n} }

// daemonSpec describes one daemon host of the servers segment.
type daemonSpec struct {
	name    string // host role, part of the namespace name: "ftp"
	addr    string
	daemon  string // program, for messages: "vsftpd"
	planted string // what is wrong with it, for messages: "anonymous FTP"
	weak    bool   // false for the two well-configured hosts
	ports   []Port
	// prepare writes the daemon's files under dir and returns its command
	// line (argv[0] a tool name from Tools) and extra environment.
	prepare func(ctx context.Context, l *Lab, dir string) (argv, env []string, err error)
}

// daemonSpecs is the lab's servers segment, in start order.
var daemonSpecs = []daemonSpec{
	{"ftp", "10.77.2.10", "vsftpd", "anonymous FTP", true, []Port{tcp(21)}, prepareVsftpd},
	{"redis", "10.77.2.11", "redis-server", "Redis without auth", true, []Port{tcp(6379)}, prepareRedis},
	{"mqtt", "10.77.2.12", "mosquitto", "anonymous MQTT", true, []Port{tcp(1883)}, prepareMosquitto},
	{"snmp", "10.77.2.13", "snmpd", "SNMP community public", true, []Port{udp(161)}, prepareSnmpd},
	{"telnet", "10.77.2.14", "telnetd", "telnet via inetd", true, []Port{tcp(23)}, prepareTelnet},
	{"smb", "10.77.2.15", "smbd", "SMB guest share, signing disabled", true, []Port{tcp(445), tcp(139)}, prepareSamba},
	{"webweak", "10.77.2.16", "nginx", "TLS 1.0, expired self-signed RSA-1024, HTTP login form", true, []Port{tcp(80), tcp(443)}, prepareNginxWeak},
	{"ssh", "10.77.2.17", "sshd", "SSH password login", true, []Port{tcp(22)}, prepareSSHPassword},
	{"webgood", "10.77.2.20", "nginx", "good TLS, lab CA", false, []Port{tcp(443)}, prepareNginxGood},
	{"sshkey", "10.77.2.21", "sshd", "SSH keys only", false, []Port{tcp(22)}, prepareSSHKeyOnly},
}

func writeFile(path, content string, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		return err
	}
	return os.Chmod(path, mode) // WriteFile's mode is subject to umask
}

func mkdirs(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func prepareVsftpd(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	root := filepath.Join(dir, "anon")
	empty := filepath.Join(dir, "empty")
	if err := mkdirs(root, empty); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(root, "README.txt"), "Lab Clinic file drop. Scans of intake forms go to /incoming.\n", 0o644); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "vsftpd.conf")
	err := writeFile(conf, strings.Join([]string{
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=0.0.0.0",
		"background=NO",
		"anonymous_enable=YES",
		"no_anon_password=YES",
		"anon_root=" + root,
		"local_enable=NO",
		"write_enable=NO",
		"secure_chroot_dir=" + empty,
		"connect_from_port_20=NO",
		"xferlog_enable=NO",
		"hide_ids=YES",
		// Sandboxes that some kernels and containers reject; the lab is
		// already isolated by its namespace.
		"seccomp_sandbox=NO",
		"isolate=NO",
		"isolate_network=NO",
		"pam_service_name=vsftpd",
		"",
	}, "\n"), 0o600)
	return []string{"vsftpd", conf}, nil, err
}

func prepareRedis(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	if err := mkdirs(dir); err != nil {
		return nil, nil, err
	}
	return []string{"redis-server",
		"--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--dir", dir, "--logfile", "", "--pidfile", filepath.Join(dir, "redis.pid"),
	}, nil, nil
}

func prepareMosquitto(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	conf := filepath.Join(dir, "mosquitto.conf")
	err := writeFile(conf, strings.Join([]string{
		"listener 1883 0.0.0.0",
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"",
	}, "\n"), 0o644)
	return []string{"mosquitto", "-c", conf}, nil, err
}

func prepareSnmpd(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	state := filepath.Join(dir, "state")
	if err := mkdirs(state); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "snmpd.conf")
	err := writeFile(conf, strings.Join([]string{
		"agentaddress udp:0.0.0.0:161",
		"rocommunity public default",
		"sysLocation Lab Clinic server closet",
		"sysContact it@lab.invalid",
		"sysName lab-printer",
		"",
	}, "\n"), 0o600)
	return []string{"snmpd", "-f", "-Lo", "-C", "-c", conf, "-p", filepath.Join(dir, "snmpd.pid"),
			"-I", "-smux"},
		[]string{"SNMP_PERSISTENT_DIR=" + state, "MIBS=", "MIBDIRS=" + state}, err
}

// fakeLogin is what telnetd runs instead of /bin/login: it asks for a user
// and a password like a real login and then refuses, so nothing can ever get
// a shell through the lab's telnet.
const fakeLogin = `#!/bin/sh
# vigil lab: a telnet login that never grants a shell.
printf 'Debian GNU/Linux 12\r\n\r\n'
printf 'lab-telnet login: '
read -r user || exit 0
printf 'Password: '
read -r pass || exit 0
sleep 2
printf '\r\nLogin incorrect\r\n'
exit 0
`

func prepareTelnet(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	login := filepath.Join(dir, "fake-login")
	if err := writeFile(login, fakeLogin, 0o755); err != nil {
		return nil, nil, err
	}
	telnetd, err := lookTool("telnetd")
	if err != nil {
		return nil, nil, err
	}
	if strings.ContainsAny(dir, " \t") {
		return nil, nil, fmt.Errorf("inetd.conf cannot hold paths with spaces: %q", dir)
	}
	conf := filepath.Join(dir, "inetd.conf")
	err = writeFile(conf,
		fmt.Sprintf("telnet stream tcp nowait root %s telnetd -h -E %s\n", telnetd, login), 0o644)
	return []string{"inetutils-inetd", "-d", "-p", filepath.Join(dir, "inetd.pid"), conf}, nil, err
}

func prepareSamba(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	share := filepath.Join(dir, "share")
	var dirs []string
	for _, d := range []string{"lock", "state", "cache", "private", "run", "ncalrpc", "log", "binddns"} {
		dirs = append(dirs, filepath.Join(dir, d))
	}
	if err := mkdirs(append(dirs, share)...); err != nil {
		return nil, nil, err
	}
	if err := os.Chmod(filepath.Join(dir, "private"), 0o700); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(share, "intake-2024.csv"), "name,dob\nJane Example,1980-01-01\n", 0o644); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "smb.conf")
	err := writeFile(conf, strings.Join([]string{
		"[global]",
		"  workgroup = LABCLINIC",
		"  netbios name = LAB-FILES",
		"  server string = Lab Clinic file server",
		"  server role = standalone server",
		"  map to guest = bad user",
		"  guest account = nobody",
		"  server signing = disabled",
		"  server min protocol = NT1",
		"  smb ports = 445 139",
		"  disable netbios = yes",
		"  load printers = no",
		"  printing = bsd",
		"  printcap name = /dev/null",
		"  disable spoolss = yes",
		"  usershare path =",
		"  lock directory = " + dirs[0],
		"  state directory = " + dirs[1],
		"  cache directory = " + dirs[2],
		"  private dir = " + dirs[3],
		"  pid directory = " + dirs[4],
		"  ncalrpc dir = " + dirs[5],
		"  log file = " + filepath.Join(dirs[6], "log.%m"),
		"  binddns dir = " + dirs[7],
		"  passdb backend = tdbsam:" + filepath.Join(dirs[3], "passdb.tdb"),
		"",
		"[public]",
		"  path = " + share,
		"  guest ok = yes",
		"  read only = yes",
		"  browseable = yes",
		"",
	}, "\n"), 0o644)
	return []string{"smbd", "--foreground", "--no-process-group", "--debug-stdout", "-d", "1", "-s", conf}, nil, err
}

const loginPage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Lab Clinic - staff sign in</title></head>
<body>
<h1>Lab Clinic patient portal</h1>
<form method="post" action="/login">
  <label>Username <input type="text" name="username"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Sign in</button>
</form>
</body>
</html>
`

const tlsPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lab Clinic</title></head>
<body><h1>Lab Clinic</h1><p>Nothing to see here.</p></body></html>
`

// nginxConf returns an nginx.conf that keeps every file under dir and runs
// in the foreground; servers are the server{} blocks.
func nginxConf(dir string, servers ...string) string {
	tmp := func(n string) string { return filepath.Join(dir, "tmp", n) }
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
user root;
pid %s;
error_log stderr notice;
events { worker_connections 256; }
http {
  access_log off;
  server_tokens on;
  default_type text/html;
  client_body_temp_path %s;
  proxy_temp_path %s;
  fastcgi_temp_path %s;
  uwsgi_temp_path %s;
  scgi_temp_path %s;
%s
}
`, filepath.Join(dir, "nginx.pid"), tmp("body"), tmp("proxy"), tmp("fastcgi"), tmp("uwsgi"), tmp("scgi"),
		strings.Join(servers, "\n"))
}

func prepareNginxWeak(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	www, wwwTLS := filepath.Join(dir, "www"), filepath.Join(dir, "www-tls")
	if err := mkdirs(www, wwwTLS, filepath.Join(dir, "tmp")); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(www, "index.html"), loginPage, 0o644); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(wwwTLS, "index.html"), tlsPage, 0o644); err != nil {
		return nil, nil, err
	}
	cert, key := filepath.Join(dir, "weak.crt"), filepath.Join(dir, "weak.key")
	if err := writeWeakCert(cert, key, "10.77.2.16"); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	err := writeFile(conf, nginxConf(dir,
		fmt.Sprintf(`  server {
    listen 80;
    root %s;
    index index.html;
  }`, www),
		fmt.Sprintf(`  server {
    listen 443 ssl;
    root %s;
    index index.html;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2;
    ssl_ciphers DEFAULT:@SECLEVEL=0;
  }`, wwwTLS, cert, key)), 0o644)
	return []string{"nginx", "-e", "stderr", "-p", dir + "/", "-c", conf}, nil, err
}

func prepareNginxGood(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	www := filepath.Join(dir, "www")
	if err := mkdirs(www, filepath.Join(dir, "tmp")); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(www, "index.html"), tlsPage, 0o644); err != nil {
		return nil, nil, err
	}
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := writeGoodCerts(l.CAFile(), cert, key, "10.77.2.20"); err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	err := writeFile(conf, nginxConf(dir,
		fmt.Sprintf(`  server {
    listen 443 ssl;
    root %s;
    index index.html;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305;
    ssl_prefer_server_ciphers on;
    ssl_ecdh_curve X25519:prime256v1:secp384r1;
  }`, www, cert, key)), 0o644)
	return []string{"nginx", "-e", "stderr", "-p", dir + "/", "-c", conf}, nil, err
}

func prepareSSHPassword(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	return prepareSSHD(ctx, l, dir, "PasswordAuthentication yes", "KbdInteractiveAuthentication no")
}

func prepareSSHKeyOnly(ctx context.Context, l *Lab, dir string) ([]string, []string, error) {
	return prepareSSHD(ctx, l, dir, "PasswordAuthentication no", "KbdInteractiveAuthentication no",
		"AuthenticationMethods publickey")
}

func prepareSSHD(ctx context.Context, l *Lab, dir string, auth ...string) ([]string, []string, error) {
	if err := mkdirs(dir); err != nil {
		return nil, nil, err
	}
	// sshd's privilege-separation directory; the openssh-server package
	// normally creates it at boot through tmpfiles.d, which a CI machine
	// without systemd never runs.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, nil, err
	}
	keygen, err := lookTool("ssh-keygen")
	if err != nil {
		return nil, nil, err
	}
	var hostKeys []string
	for _, kt := range []string{"ed25519", "ecdsa"} {
		p := filepath.Join(dir, "ssh_host_"+kt+"_key")
		if _, err := run(ctx, keygen, "-q", "-t", kt, "-N", "", "-C", "vigil-lab", "-f", p); err != nil {
			return nil, nil, err
		}
		hostKeys = append(hostKeys, "HostKey "+p)
	}
	lines := append([]string{
		"Port 22",
		"ListenAddress 0.0.0.0",
		"AddressFamily inet",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"PermitRootLogin no",
		"PubkeyAuthentication yes",
		"UseDNS no",
		"LogLevel INFO",
	}, hostKeys...)
	lines = append(lines, auth...)
	conf := filepath.Join(dir, "sshd_config")
	err = writeFile(conf, strings.Join(lines, "\n")+"\n", 0o600)
	return []string{"sshd", "-D", "-e", "-f", conf}, nil, err
}
