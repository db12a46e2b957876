package main

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/pgtest"
)

// Two vigil serve replicas on one PostgreSQL database share the
// schedule: every scheduled run happens exactly once (one job row per due
// slot, one stored scan per completed job); a replica SIGKILLed while it
// runs a job loses nothing: the job is rescued, run by the other replica
// and stored. The organisation job reads a CSV export through a named
// pipe the test feeds, so the test decides when a scan can finish.
func TestServeReplicasOnPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	url := pgtest.URL(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "users.csv")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	cfg := filepath.Join(dir, "vigil.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`organization: Replica Test
data_dir: %q
locations: [{id: a, segments: [{name: s, cidr: 127.0.0.1/32, role: servers}]}]
identity: [{type: csv, system: emr, path: %q}]
schedules: [{cron: "@every 2s", locations: ["*"]}]
`, filepath.Join(dir, "data"), fifo)), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := "username,email,display_name,enabled,mfa,last_login,locations,role,is_admin\nfrontdesk,frontdesk@glow.example,Front Desk,true,false," +
		time.Now().UTC().Format(time.DateOnly) + ",a,reception,false\n"

	args := []string{"--config", cfg, "--db", url, "--only", "identity", "--listen", "127.0.0.1:0", "--grace", "5s",
		"--max-jitter", "0s", "--job-timeout", "20s", "--rescue-after", "25s"}
	a := startServe(t, args...)
	b := startServe(t, args...)
	pids := map[string]*daemonProc{fmt.Sprint(a.cmd.Process.Pid): a, fmt.Sprint(b.cmd.Process.Pid): b}

	// The feeder gives each reader of the pipe the export once, unless
	// paused: a reader blocked in open() counts as one for a non-blocking
	// open, and once fed, the feeder waits for it to close the pipe.
	var paused atomic.Bool
	stop := make(chan struct{})
	fed := make(chan struct{})
	readerOpen := func() bool {
		for pid := range pids {
			fds, _ := filepath.Glob("/proc/" + pid + "/fd/*")
			for _, fd := range fds {
				if l, err := os.Readlink(fd); err == nil && l == fifo {
					return true
				}
			}
		}
		return false
	}
	go func() {
		defer close(fed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if paused.Load() {
				continue
			}
			f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil { // ENXIO: nobody reading
				continue
			}
			_, _ = f.WriteString(csv)
			f.Close()
			time.Sleep(200 * time.Millisecond)
			for i := 0; i < 500 && readerOpen(); i++ {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	defer func() { close(stop); <-fed }()

	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	wait := func(limit time.Duration, what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s\nreplica a:\n%s\nreplica b:\n%s", limit, what, a.stderr, b.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	const completedScans = `SELECT count(*) FROM river_job WHERE kind = 'vigil_scan' AND state = 'completed'`
	if n := count(`SELECT count(*) FROM scans WHERE finished_at IS NOT NULL AND NOT complete`); n != 0 {
		defer t.Errorf("%d incomplete scans: the export was not read in full", n)
	}
	wait(90*time.Second, "four scheduled scans completed", func() bool { return count(completedScans) >= 4 })

	// Hold the next scan in its read of the export, find the replica
	// running it, and kill that replica.
	paused.Store(true)
	var (
		jobID  int64
		holder string
	)
	wait(60*time.Second, "a scan held running", func() bool {
		var id1, id2 int64
		var by string
		q := `SELECT id, attempted_by[array_length(attempted_by, 1)] FROM river_job WHERE kind = 'vigil_scan' AND state = 'running'`
		if err := db.QueryRow(q).Scan(&id1, &by); err != nil {
			return false
		}
		time.Sleep(500 * time.Millisecond)
		if err := db.QueryRow(q).Scan(&id2, &by); err != nil || id1 != id2 {
			return false
		}
		jobID, holder = id1, by
		return true
	})
	var victim, survivor *daemonProc
	for pid, p := range pids {
		if strings.HasSuffix(holder, "-"+pid) {
			victim = p
		} else {
			survivor = p
		}
	}
	if victim == nil {
		t.Fatalf("job %d is held by %q, neither replica (%v)", jobID, holder, pids)
	}
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	paused.Store(false)

	wait(120*time.Second, fmt.Sprintf("job %d rescued and completed by the other replica", jobID), func() bool {
		return count(`SELECT count(*) FROM river_job WHERE id = $1 AND state = 'completed' AND attempt >= 2 AND NOT attempted_by[array_length(attempted_by, 1)] = $2`, jobID, holder) == 1
	})
	// The scan the killed replica began is nobody's: the survivor's alert
	// cycles finish it as incomplete (abandoned) once it is twice
	// --rescue-after old, keeping what it stored.
	wait(120*time.Second, "the killed replica's scan finished as abandoned", func() bool {
		return count(`SELECT count(*) FROM scans WHERE finished_at IS NULL`) == 0
	})
	if n := count(`SELECT count(*) FROM scans WHERE NOT complete AND errors LIKE '%abandoned: begun%'`); n != 1 {
		t.Errorf("%d scans finished as abandoned, want 1 (the killed replica's)", n)
	}
	if code := survivor.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("surviving replica exited %d:\n%s", code, survivor.stderr)
	}

	if n := count(`SELECT count(*) FROM (SELECT args->>'due' FROM river_job WHERE kind = 'vigil_scan' GROUP BY 1 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d due slots have more than one job", n)
	}
	if n := count(`SELECT count(*) FROM river_job WHERE kind = 'vigil_scan' AND state = 'discarded'`); n != 0 {
		t.Errorf("%d scan jobs discarded: lost", n)
	}
	jobs, scans := count(completedScans), count(`SELECT count(*) FROM scans WHERE finished_at IS NOT NULL AND complete`)
	if jobs != scans {
		t.Errorf("%d scan jobs completed, %d scans stored: each scheduled run should be stored exactly once", jobs, scans)
	}
	if unfinished := count(`SELECT count(*) FROM scans WHERE finished_at IS NULL`); unfinished > 0 {
		t.Errorf("%d scans left unfinished", unfinished)
	}
	t.Logf("%d scheduled scans, each once; job %d survived replica %s's SIGKILL", jobs, jobID, holder)
}
