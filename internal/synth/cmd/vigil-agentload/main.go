// Command vigil-agentload measures how fast one `vigil serve` ingests what
// a fleet of site agents pushes. It starts vigil serve on 127.0.0.1 over a
// synthetic organisation of --agents sites (no schedules: the server never
// scans), on SQLite or on a throwaway PostgreSQL cluster of its own (also
// on 127.0.0.1), creates one enrollment token per site as `vigil agent
// token create` would, enrolls one simulated agent per site, and has every
// agent push a day of scans of its site (--scans-per-day, each a begin,
// the observations in batches and a finish the server evaluates the rules
// on) through the real agent protocol: signed, gzip-compressed,
// idempotent batches. All agents push at once, each its batches in order,
// as agents coming back after an outage would.
//
// It prints the sustained ingest rate (observations acknowledged per
// second of wall time), push latency percentiles per batch kind, and the
// server's resident memory (sampled VmRSS, and VmHWM at the end). It only
// ever talks to 127.0.0.1.
//
//	vigil-agentload --vigil bin/vigil --db sqlite
//	vigil-agentload --vigil bin/vigil --db postgres --agents 500 --json pg.json
//
// Exit status: 0 measured, 1 measured but some push failed, 2 could not run.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/daemon"
	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/internal/synth"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store"
	"github.com/vigilhq/vigil/store/dbmove"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	_ "modernc.org/sqlite"             // the "sqlite" database/sql driver
)

func main() { os.Exit(run()) }

// Result is what one run measured (--json).
type Result struct {
	Backend      string  `json:"backend"`
	Agents       int     `json:"agents"`
	ScansPerDay  int     `json:"scans_per_day"`
	Scans        int     `json:"scans"`
	Batches      int64   `json:"batches"`
	Observations int64   `json:"observations"`
	Failed       int64   `json:"failed"`
	Seconds      float64 `json:"seconds"`
	ObsPerSecond float64 `json:"observations_per_second"`
	// Latency per batch kind, milliseconds.
	Latency   map[string]Percentiles `json:"latency_ms"`
	RSSMaxMiB float64                `json:"rss_max_mib"` // highest sampled VmRSS
	HWMMiB    float64                `json:"hwm_mib"`     // VmHWM at the end
	Stored    int64                  `json:"stored_observations,omitempty"`
}

// Percentiles of one kind of push.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func run() int {
	var (
		vigil      = flag.String("vigil", "bin/vigil", "vigil binary")
		backend    = flag.String("db", "sqlite", "store backend: sqlite or postgres (a throwaway cluster on 127.0.0.1, from the Debian postgresql package)")
		agents     = flag.Int("agents", 500, "simulated site agents, one per site")
		assets     = flag.Int("assets", 0, "hosts over all sites (default 25 per site)")
		scansPer   = flag.Int("scans-per-day", 6, "scans each agent pushes (a day's worth)")
		batchSize  = flag.Int("batch", protocol.MaxBatchObservations, "observations per batch")
		timeout    = flag.Duration("timeout", 30*time.Minute, "give up after this long")
		jsonOut    = flag.String("json", "", "also write the result as JSON to this file")
		serverLog  = flag.String("server-log", "", "write the server's stderr to this file")
		keep       = flag.Bool("keep", false, "keep the temporary directory")
		serveArgs  = flag.String("serve-args", "", "extra flags for vigil serve, space-separated (e.g. --debug-addr 127.0.0.1:6060 to profile it)")
		concurrent = flag.Int("concurrency", 0, "agents pushing at once (default: all of them)")
	)
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: vigil-agentload --vigil BIN [--db sqlite|postgres] [flags]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	fail := func(format string, a ...any) int {
		fmt.Fprintf(os.Stderr, "vigil-agentload: "+format+"\n", a...)
		return 2
	}
	if *backend != "sqlite" && *backend != "postgres" {
		return fail("--db %q: want sqlite or postgres", *backend)
	}
	if *agents < 1 || *agents > 1500 {
		return fail("--agents %d: want 1 to 1500 (the synthetic address plan's limit)", *agents)
	}
	if *scansPer < 1 || *scansPer > 96 {
		return fail("--scans-per-day %d: want 1 to 96", *scansPer)
	}
	if *batchSize < 1 || *batchSize > protocol.MaxBatchObservations {
		return fail("--batch %d: want 1 to %d", *batchSize, protocol.MaxBatchObservations)
	}
	if *assets == 0 {
		*assets = 25 * *agents
	}
	if *concurrent <= 0 {
		*concurrent = *agents
	}
	bin, err := filepath.Abs(*vigil)
	if err != nil {
		return fail("%v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		return fail("--vigil: %v (build it with `make build`)", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "vigil-agentload-")
	if err != nil {
		return fail("%v", err)
	}
	if *keep {
		fmt.Fprintf(os.Stderr, "keeping %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	fleet := synth.NewFleet(1, *agents, *assets)
	cfgPath := filepath.Join(dir, synth.ConfigFile)
	const organization = "Fleet Load Group"
	if err := fleet.WriteConfig(cfgPath, organization); err != nil {
		return fail("%v", err)
	}
	var dbArgs []string
	if *backend == "postgres" {
		pg, err := pgtest.Start()
		if err != nil {
			return fail("postgres: %v", err)
		}
		defer pg.Stop()
		url, err := pg.CreateDB(ctx)
		if err != nil {
			return fail("postgres: %v", err)
		}
		dbArgs = []string{"--db", url}
	}

	sites := fleet.Sites()
	fmt.Fprintf(os.Stderr, "creating %d enrollment tokens...\n", len(sites))
	tokens, err := createTokens(ctx, dir, organization, dbArgs, sites)
	if err != nil {
		return fail("%v", err)
	}

	var logW io.Writer
	if *serverLog != "" {
		f, err := os.Create(*serverLog)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		logW = f
	}
	srv, err := synth.StartServe(ctx, synth.ServeOptions{Vigil: bin, Dir: dir, Args: append(slices.Clone(dbArgs), strings.Fields(*serveArgs)...), Log: logW, Network: true})
	if err != nil {
		return fail("%v", err)
	}
	defer srv.Stop()

	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: *concurrent, MaxConnsPerHost: *concurrent}}
	fmt.Fprintf(os.Stderr, "enrolling %d agents...\n", len(sites))
	fleetAgents := make([]*agent, len(sites))
	for i, site := range sites {
		var a *agent
		// The server limits enrollments (10/s after a burst of 100), as
		// it should: wait and try again, as an agent does.
		for try := 0; ; try++ {
			a, err = enroll(ctx, client, srv.URL, tokens[site])
			if !errors.Is(err, errTooMany) || try == 100 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			return fail("enroll agent for %s: %v", site, err)
		}
		a.site, a.index = site, i
		fleetAgents[i] = a
	}

	res := Result{Backend: *backend, Agents: len(sites), ScansPerDay: *scansPer, Scans: len(sites) * *scansPer, Latency: map[string]Percentiles{}}
	var (
		mu   sync.Mutex
		lats = map[string][]time.Duration{}
		errs []error
		obs  atomic.Int64
		bats atomic.Int64
		bad  atomic.Int64
	)
	record := func(kind string, d time.Duration) {
		mu.Lock()
		lats[kind] = append(lats[kind], d)
		mu.Unlock()
	}

	// Sample the server's memory while the agents push.
	sampleDone := make(chan struct{})
	var rssMax int64
	go func() {
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sampleDone:
				return
			case <-t.C:
				if m, err := synth.ProcMemory(srv.PID()); err == nil && m.RSS > rssMax {
					rssMax = m.RSS
				}
			}
		}
	}()

	day := time.Now().UTC().Truncate(24 * time.Hour).Add(-24 * time.Hour)
	every := 24 * time.Hour / time.Duration(*scansPer)
	fmt.Fprintf(os.Stderr, "%d agents pushing %d scans each...\n", len(sites), *scansPer)
	sem := make(chan struct{}, *concurrent)
	var wg sync.WaitGroup
	began := time.Now()
	for _, a := range fleetAgents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for s := range *scansPer {
				at := day.Add(time.Duration(s)*every + time.Duration(a.index)*time.Second)
				batches := scanBatches(a.site, fleet.Observations(a.index, at), at, *batchSize)
				for _, b := range batches {
					if ctx.Err() != nil {
						return
					}
					start := time.Now()
					err := a.push(ctx, client, srv.URL, b)
					record(b.Kind, time.Since(start))
					if err != nil {
						bad.Add(1)
						mu.Lock()
						if len(errs) < 5 {
							errs = append(errs, fmt.Errorf("%s batch %s: %w", a.site, b.ID, err))
						}
						mu.Unlock()
						continue
					}
					bats.Add(1)
					obs.Add(int64(len(b.Observations)))
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(began)
	close(sampleDone)
	if ctx.Err() != nil {
		return fail("gave up: %v", ctx.Err())
	}
	m, _ := synth.ProcMemory(srv.PID())
	res.Seconds = elapsed.Seconds()
	res.Observations, res.Batches, res.Failed = obs.Load(), bats.Load(), bad.Load()
	res.ObsPerSecond = float64(res.Observations) / elapsed.Seconds()
	res.RSSMaxMiB = float64(max(rssMax, m.RSS)) / (1 << 20)
	res.HWMMiB = float64(m.HWM) / (1 << 20)
	for k, ds := range lats {
		res.Latency[k] = percentiles(ds)
	}
	srv.Stop()
	if n, err := countStored(ctx, dir, dbArgs); err == nil {
		res.Stored = n
	} else {
		fmt.Fprintf(os.Stderr, "vigil-agentload: counting stored observations: %v\n", err)
	}

	fmt.Printf("backend %s: %d agents, %d scans, %d batches, %d observations in %.1fs\n",
		res.Backend, res.Agents, res.Scans, res.Batches, res.Observations, res.Seconds)
	fmt.Printf("  ingest        %.0f observations/s sustained\n", res.ObsPerSecond)
	for _, k := range []string{protocol.BatchBegin, protocol.BatchObservations, protocol.BatchFinish} {
		p := res.Latency[k]
		fmt.Printf("  %-13s n=%d p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms\n", k, p.N, p.P50, p.P90, p.P99, p.Max)
	}
	fmt.Printf("  server RSS    max %.0f MiB sampled, peak (VmHWM) %.0f MiB\n", res.RSSMaxMiB, res.HWMMiB)
	if res.Stored > 0 {
		fmt.Printf("  stored        %d observations\n", res.Stored)
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return fail("%v", err)
		}
	}
	if res.Failed > 0 || (res.Stored > 0 && res.Stored != res.Observations) {
		for _, e := range errs {
			fmt.Fprintf(os.Stderr, "vigil-agentload: %v\n", e)
		}
		if res.Stored > 0 && res.Stored != res.Observations {
			fmt.Fprintf(os.Stderr, "vigil-agentload: %d observations acknowledged but %d stored\n", res.Observations, res.Stored)
		}
		return 1
	}
	return 0
}

// createTokens creates one enrollment token per site in the store, before
// the server starts (the SQLite store has one writer at a time), as
// `vigil agent token create` does.
func createTokens(ctx context.Context, dir, organization string, dbArgs, sites []string) (map[string]string, error) {
	url := "sqlite://" + filepath.Join(dir, synth.DataDir, "vigil.db")
	if len(dbArgs) == 2 {
		url = dbArgs[1]
	}
	st, err := dbmove.Open(ctx, url, false)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	as, ok := st.(store.AgentStore)
	if !ok {
		return nil, fmt.Errorf("%T keeps no agents", st)
	}
	out := make(map[string]string, len(sites))
	now := time.Now()
	for _, site := range sites {
		tok := protocol.NewToken(daemon.TenantID(organization))
		if err := as.CreateEnrollToken(ctx, store.EnrollToken{Hash: tok.Hash(), Location: site, CreatedBy: "vigil-agentload",
			CreatedAt: now, ExpiresAt: now.Add(24 * time.Hour)}); err != nil {
			return nil, fmt.Errorf("token for %s: %w", site, err)
		}
		out[site] = tok.String()
	}
	return out, nil
}

// countStored counts the observations in the store, read directly with
// SQL once the server has stopped.
func countStored(ctx context.Context, dir string, dbArgs []string) (int64, error) {
	driver, dsn := "sqlite", "file:"+filepath.Join(dir, synth.DataDir, "vigil.db")+"?mode=ro"
	if len(dbArgs) == 2 {
		driver, dsn = "pgx", dbArgs[1]
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int64
	err = db.QueryRowContext(ctx, "SELECT count(*) FROM observations").Scan(&n)
	return n, err
}

type agent struct {
	site    string
	index   int
	tenant  string
	id      string
	key     ed25519.PrivateKey
	scratch bytes.Buffer
}

var errTooMany = errors.New("429 Too Many Requests")

func enroll(ctx context.Context, client *http.Client, base, token string) (*agent, error) {
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(protocol.EnrollRequest{Token: token, PublicKey: pub, Hostname: "load-agent", Version: "agentload"})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.PathEnroll, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusTooManyRequests {
		return nil, errTooMany
	}
	if resp.StatusCode/100 != 2 {
		return nil, httpError(resp)
	}
	var er protocol.EnrollResponse
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil {
		return nil, err
	}
	return &agent{tenant: er.Tenant, id: er.AgentID, key: priv}, nil
}

// scanBatches cuts one scan into the batches an agent sends.
func scanBatches(site string, obs []observe.Observation, at time.Time, size int) []protocol.Batch {
	scan := observe.Scan{ID: scanrun.NewScanID(at), StartedAt: at, Version: "agentload", Locations: []string{site}}
	out := []protocol.Batch{{ID: protocol.BatchID(scan.ID, 0), Kind: protocol.BatchBegin, Scan: scan, Seq: 0}}
	for chunk := range slices.Chunk(obs, size) {
		seq := len(out)
		out = append(out, protocol.Batch{ID: protocol.BatchID(scan.ID, seq), Kind: protocol.BatchObservations, Scan: scan, Seq: seq, Observations: chunk})
	}
	fin := scan
	fin.FinishedAt = at.Add(3 * time.Minute)
	fin.Complete = true
	fin.Vantages = map[string][]string{site: {"front-desk", "guest"}}
	out = append(out, protocol.Batch{ID: protocol.BatchID(scan.ID, len(out)), Kind: protocol.BatchFinish, Scan: fin, Seq: len(out)})
	return out
}

func (a *agent) push(ctx context.Context, client *http.Client, base string, b protocol.Batch) error {
	a.scratch.Reset()
	zw := gzip.NewWriter(&a.scratch)
	if err := json.NewEncoder(zw).Encode(b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	body := a.scratch.Bytes()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+protocol.PathBatches, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	protocol.Sign(req, a.tenant, a.id, a.key, body, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return httpError(resp)
	}
	var ack protocol.BatchAck
	if err := json.NewDecoder(resp.Body).Decode(&ack); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	if ack.Duplicate {
		return errors.New("acknowledged as a duplicate on its first push")
	}
	return nil
}

func httpError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e protocol.Error
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan()
	return fmt.Errorf("%s: %s", resp.Status, sc.Text())
}

func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := min(int(q*float64(len(ds))), len(ds)-1)
		return float64(ds[i].Microseconds()) / 1000
	}
	return Percentiles{N: len(ds), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: float64(ds[len(ds)-1].Microseconds()) / 1000}
}
