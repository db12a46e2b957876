package synth

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// LoadOptions bound a load run: Clients sessions request Routes in turn
// for Duration (or until Requests requests in all), after Warmup.
type LoadOptions struct {
	Clients  []*Client
	Routes   []string
	Duration time.Duration
	Requests int // 0: no limit but Duration
	Warmup   time.Duration
	// PID, when set, is sampled for VmRSS every 200ms and read for
	// VmHWM at the end.
	PID int
	// Think is each client's pause between requests, drawn uniformly
	// from [Think/2, 3*Think/2]; zero sends the next request at once
	// (a closed loop that saturates the server).
	Think time.Duration
}

// RouteStats are the latencies of one route.
type RouteStats struct {
	Route              string
	Requests, Errors   int
	P50, P90, P99, Max time.Duration
	Mean               time.Duration
	Bytes              int64
	FirstError         string
	latencies          []time.Duration
}

// LoadResult is what Run measured.
type LoadResult struct {
	Clients  int
	Duration time.Duration
	Routes   []RouteStats
	// Memory: VmRSS before the run, the highest VmRSS sampled during it,
	// and VmHWM (the process's peak since it started) after it.
	RSSBefore, RSSMax, HWM int64
	Think                  time.Duration
	// ServerCPU and LoadCPU are the CPU time (user+system) the server and
	// this process used during the run: on a small machine the load
	// generator competes with the server.
	ServerCPU, LoadCPU time.Duration
}

// loopbackOnly refuses to load anything but this machine.
func loopbackOnly(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return nil
	}
	return fmt.Errorf("%s: the load tool only targets a loopback address (127.0.0.1)", base)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// RunLoad runs the load and returns per-route statistics.
func RunLoad(ctx context.Context, o LoadOptions) (*LoadResult, error) {
	if len(o.Clients) == 0 || len(o.Routes) == 0 {
		return nil, fmt.Errorf("load: no clients or no routes")
	}
	for _, c := range o.Clients {
		if err := loopbackOnly(c.Base); err != nil {
			return nil, err
		}
	}
	res := &LoadResult{Clients: len(o.Clients)}
	// Warm up: every client every route once (this also checks the
	// sessions work), then round and round until Warmup is over.
	warm := time.Now().Add(o.Warmup)
	for first := true; first || time.Now().Before(warm); first = false {
		for _, c := range o.Clients {
			for _, r := range o.Routes {
				p, err := c.Get(ctx, r)
				if err != nil {
					return nil, fmt.Errorf("warm-up %s: %w", r, err)
				}
				if path, _, _ := strings.Cut(r, "?"); p.Status != http.StatusOK || p.URL.Path != path {
					return nil, fmt.Errorf("warm-up %s: %d at %s: is the client signed in?", r, p.Status, p.URL.Path)
				}
			}
		}
	}
	if o.PID > 0 {
		if m, err := ProcMemory(o.PID); err == nil {
			res.RSSBefore, res.RSSMax = m.RSS, m.RSS
		}
	}
	var (
		mu    sync.Mutex
		stats = map[string]*RouteStats{}
		count int
	)
	for _, r := range o.Routes {
		stats[r] = &RouteStats{Route: r}
	}
	rctx, cancel := context.WithTimeout(ctx, o.Duration)
	defer cancel()
	// The RSS sampler.
	var wg sync.WaitGroup
	if o.PID > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-rctx.Done():
					return
				case <-t.C:
					if m, err := ProcMemory(o.PID); err == nil {
						mu.Lock()
						res.RSSMax = max(res.RSSMax, m.RSS)
						mu.Unlock()
					}
				}
			}
		}()
	}
	res.Think = o.Think
	srvCPU0, _ := procCPU(o.PID)
	selfCPU0, _ := procCPU(os.Getpid())
	start := time.Now()
	for i, c := range o.Clients {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n++ {
				if o.Think > 0 {
					select {
					case <-rctx.Done():
						return
					case <-time.After(o.Think/2 + time.Duration(r.Int64N(int64(o.Think)+1))):
					}
				}
				if rctx.Err() != nil {
					return
				}
				mu.Lock()
				if o.Requests > 0 && count >= o.Requests {
					mu.Unlock()
					cancel()
					return
				}
				count++
				mu.Unlock()
				route := o.Routes[n%len(o.Routes)]
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(rctx, http.MethodGet, c.Base+route, nil)
				if c.Bearer != "" {
					req.Header.Set("Authorization", "Bearer "+c.Bearer)
				}
				resp, err := c.HTTP.Do(req)
				var nbytes int64
				status := 0
				if err == nil {
					nbytes, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				d := time.Since(t0)
				if rctx.Err() != nil && err != nil {
					return // cut off by the end of the run: not a measurement
				}
				mu.Lock()
				s := stats[route]
				s.Requests++
				s.Bytes += nbytes
				s.latencies = append(s.latencies, d)
				// A redirect to /login means the session was lost: an error.
				if err != nil || status != http.StatusOK || (resp != nil && resp.Request.URL.Path != req.URL.Path) {
					s.Errors++
					if s.FirstError == "" {
						if err != nil {
							s.FirstError = err.Error()
						} else {
							s.FirstError = fmt.Sprintf("%d at %s", status, resp.Request.URL.Path)
						}
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Duration = time.Since(start)
	if c, err := procCPU(o.PID); err == nil {
		res.ServerCPU = c - srvCPU0
	}
	if c, err := procCPU(os.Getpid()); err == nil {
		res.LoadCPU = c - selfCPU0
	}
	if o.PID > 0 {
		if m, err := ProcMemory(o.PID); err == nil {
			res.HWM = m.HWM
			res.RSSMax = max(res.RSSMax, m.RSS)
		}
	}
	for _, r := range o.Routes {
		s := stats[r]
		slices.Sort(s.latencies)
		var sum time.Duration
		for _, d := range s.latencies {
			sum += d
		}
		if n := len(s.latencies); n > 0 {
			s.Mean = sum / time.Duration(n)
			s.P50, s.P90, s.P99, s.Max = percentile(s.latencies, .50), percentile(s.latencies, .90), percentile(s.latencies, .99), s.latencies[n-1]
		}
		res.Routes = append(res.Routes, *s)
	}
	return res, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// WriteTable prints the result as a table.
func (r *LoadResult) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "route\trequests\terrors\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\tKiB/resp\t\n")
	for _, s := range r.Routes {
		kib := 0.0
		if s.Requests > 0 {
			kib = float64(s.Bytes) / float64(s.Requests) / 1024
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%.1f\t\n", s.Route, s.Requests, s.Errors,
			float64(s.Requests)/r.Duration.Seconds(), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), kib)
	}
	tw.Flush()
	think := "no think time (closed loop)"
	if r.Think > 0 {
		think = "think time " + r.Think.String() + " ±50%"
	}
	fmt.Fprintf(w, "%d clients, %s, %s; server RSS before %s, max during %s, VmHWM %s; CPU: server %.1fs, load generator %.1fs\n",
		r.Clients, think, r.Duration.Round(time.Millisecond), mib(r.RSSBefore), mib(r.RSSMax), mib(r.HWM),
		r.ServerCPU.Seconds(), r.LoadCPU.Seconds())
	for _, s := range r.Routes {
		if s.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", s.Route, s.FirstError)
		}
	}
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// procCPU is the user+system CPU time of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("no pid")
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields of the line, in clock ticks (100 Hz).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond, nil
}
