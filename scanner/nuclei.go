package scanner

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/projectdiscovery/nuclei/v3/pkg/catalog/config"
	"github.com/projectdiscovery/nuclei/v3/pkg/catalog/disk"
	"github.com/projectdiscovery/nuclei/v3/pkg/input"
	"github.com/projectdiscovery/nuclei/v3/pkg/output"
	"github.com/projectdiscovery/nuclei/v3/pkg/protocols"
	"github.com/projectdiscovery/nuclei/v3/pkg/protocols/common/contextargs"
	"github.com/projectdiscovery/nuclei/v3/pkg/protocols/common/interactsh"
	"github.com/projectdiscovery/nuclei/v3/pkg/protocols/common/protocolinit"
	"github.com/projectdiscovery/nuclei/v3/pkg/protocols/common/protocolstate"
	"github.com/projectdiscovery/nuclei/v3/pkg/scan"
	"github.com/projectdiscovery/nuclei/v3/pkg/templates"
	templatetypes "github.com/projectdiscovery/nuclei/v3/pkg/templates/types"
	nucleitypes "github.com/projectdiscovery/nuclei/v3/pkg/types"
	"github.com/projectdiscovery/ratelimit"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"
)

// nucleiPack is vigil's own template pack. It ships inside the binary and is
// written to a private directory when an engine starts, so checks work
// offline and never depend on ~/nuclei-templates.
//
//go:embed templates/*.yaml
var nucleiPack embed.FS

// Defaults for NucleiOptions fields left at zero.
const (
	NucleiDefaultRateLimit   = 20              // probes per second, all targets together
	NucleiDefaultTimeout     = 5 * time.Second // per connect / read
	NucleiDefaultConcurrency = 8               // probes in flight
)

// Errors callers can branch on.
var (
	// ErrNucleiTemplateDir wraps every problem with a configured extra
	// template directory: missing, not a directory, or holding no template
	// vigil can run.
	ErrNucleiTemplateDir = errors.New("nuclei template directory unusable")
	// ErrNucleiTarget is returned by Run for a job whose target is not
	// IP:PORT.
	ErrNucleiTarget = errors.New("nuclei target must be IP:PORT")
	// ErrNucleiClosed is returned by Run after Close.
	ErrNucleiClosed = errors.New("nuclei engine closed")
	// ErrNucleiNoMatch is returned by the result adapters for an event that
	// records a template that did not match (nuclei -matcher-status output).
	ErrNucleiNoMatch = errors.New("nuclei event is not a match")
)

// NucleiOptions configures a Nuclei engine.
type NucleiOptions struct {
	// ExtraTemplateDirs are directories of the user's own nuclei templates
	// (for example a checkout of the official nuclei-templates). They are
	// read once at start; vigil never downloads or updates templates.
	ExtraTemplateDirs []string
	// RateLimit caps probes per second over all targets (one probe is one
	// template run against one target). Zero means NucleiDefaultRateLimit.
	RateLimit int
	// Timeout bounds each connect and each read. It is rounded up to whole
	// seconds where nuclei only takes seconds. Zero means
	// NucleiDefaultTimeout.
	Timeout time.Duration
	// Concurrency caps probes in flight. Zero means
	// NucleiDefaultConcurrency.
	Concurrency int
	// Logger receives nuclei's own messages at debug level, and notes about
	// the extra templates at info and warn. Nil means slog.Default().
	Logger *slog.Logger
	// SourceIP, if set, is the local address templates connect from.
	SourceIP string
}

// NucleiJob asks for the templates matching Tags to be run against Target.
type NucleiJob struct {
	// Target is IP:PORT ("10.1.2.5:6379", "[fe80::1]:445"). Host names are
	// refused: nuclei would resolve them through public DNS servers.
	Target string
	// Tags selects templates of vigil's pack by tag ("redis", "ftp", "smb",
	// ...). Every template of the extra directories runs against every
	// job, whatever the tags; an empty Tags runs only those.
	Tags []string
	// TLS marks a port that speaks TLS: HTTP templates get an https:// URL
	// instead of http://.
	TLS bool
}

// NucleiResult is one template that matched one target.
type NucleiResult struct {
	Host             string    `json:"host"`
	Port             int       `json:"port"`
	Proto            string    `json:"proto"` // tcp | udp
	TemplateID       string    `json:"template_id"`
	Name             string    `json:"name"`
	TemplateSeverity string    `json:"template_severity"`
	Extracted        []string  `json:"extracted,omitempty"`
	Details          string    `json:"details"`
	At               time.Time `json:"at"`
}

// Attrs returns the attributes of an observation of kind check, keyed as
// docs/observations.md says.
func (r NucleiResult) Attrs() map[string]any {
	extracted := r.Extracted
	if extracted == nil {
		extracted = []string{}
	}
	return map[string]any{
		"check":             r.TemplateID,
		"name":              r.Name,
		"engine":            "nuclei",
		"extracted":         slices.Clone(extracted),
		"details":           r.Details,
		"template_severity": r.TemplateSeverity,
	}
}

// nucleiServiceTags maps nmap service names to the tags of vigil's pack.
var nucleiServiceTags = map[string]string{
	"tcp/ftp":          "ftp",
	"tcp/telnet":       "telnet",
	"tcp/redis":        "redis",
	"tcp/mqtt":         "mqtt",
	"tcp/vnc":          "vnc",
	"tcp/microsoft-ds": "smb",
	"tcp/netbios-ssn":  "smb", // nmap names Samba's 445 so; Samba also answers SMB2 on 139
	"tcp/http":         "http",
	"tcp/http-alt":     "http",
	"tcp/http-mgmt":    "http",
	"udp/snmp":         "snmp",
}

// NucleiJobFor returns the job that runs vigil's pack against a service
// nmap reported (proto tcp|udp, nmap service name, tunnel "ssl" or ""), and
// false when no pack template applies. A TLS port gets the SSL 3.0 check
// and TLS set; the plain-HTTP login check only runs where there is no TLS.
func NucleiJobFor(host string, port int, proto, service, tunnel string) (NucleiJob, bool) {
	job := NucleiJob{Target: net.JoinHostPort(host, strconv.Itoa(port))}
	proto, service = strings.ToLower(proto), strings.ToLower(service)
	if proto == "tcp" && SpeaksTLS(service, tunnel) {
		job.TLS = true
		job.Tags = append(job.Tags, "tls")
	}
	if tag, ok := nucleiServiceTags[proto+"/"+service]; ok && !(job.TLS && tag == "http") {
		job.Tags = append(job.Tags, tag)
	}
	return job, len(job.Tags) > 0
}

// Nuclei runs nuclei templates (vigil's embedded pack plus the user's extra
// directories) against targets. It uses nuclei's protocol engines as a
// library but none of nuclei's runner: no update check, no template
// download, no interactsh (out-of-band) server, no cloud upload. It only
// ever connects to the targets of the jobs it is given.
//
// A Nuclei is safe for concurrent use; Close waits for running Runs.
type Nuclei struct {
	log         *slog.Logger
	concurrency int
	limit       *rate.Limiter

	dir    string // private directory: pack/ and tmp/
	packIn string // pack/ inside dir
	execID string

	opts        *nucleitypes.Options
	httpLimiter *ratelimit.Limiter
	interactsh  *interactsh.Client

	pack  []*templates.Template
	extra []*templates.Template

	mu     sync.RWMutex
	closed bool
}

// nucleiGlobalLogOnce guards the one change vigil makes to nuclei's
// process-wide logger: its messages go to slog (debug) instead of stderr.
var nucleiGlobalLogOnce sync.Once

// NewNuclei loads and compiles the template pack and the extra directories,
// once. It makes no network connection. vigil's pack compiles in well under
// a second; a large extra directory (the official nuclei-templates) takes
// longer, so callers may run it in a goroutine while other scanners work.
// ctx is checked between steps. An unusable extra directory is an error
// wrapping ErrNucleiTemplateDir and naming the directory.
func NewNuclei(ctx context.Context, opts NucleiOptions) (_ *Nuclei, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "nuclei")
	if opts.RateLimit <= 0 {
		opts.RateLimit = NucleiDefaultRateLimit
	}
	if opts.Timeout <= 0 {
		opts.Timeout = NucleiDefaultTimeout
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = NucleiDefaultConcurrency
	}

	extraDirs, err := nucleiCheckDirs(opts.ExtraTemplateDirs)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	nucleiGlobalLogOnce.Do(nucleiRedirectGlobalLog)
	// Belt and braces: nothing below calls nuclei's updater, but should a
	// code path ever ask, the answer is no.
	config.DefaultConfig.DisableUpdateCheck()

	dir, err := os.MkdirTemp("", "vigil-nuclei-")
	if err != nil {
		return nil, fmt.Errorf("nuclei: private directory: %w", err)
	}
	n := &Nuclei{
		log:         log,
		concurrency: opts.Concurrency,
		limit:       rate.NewLimiter(rate.Limit(opts.RateLimit), 1),
		dir:         dir,
		packIn:      filepath.Join(dir, "pack"),
		execID:      "vigil-" + nucleiRandomHex(8),
	}
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if err := nucleiWritePack(n.packIn); err != nil {
		return nil, err
	}
	tmpDir := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmpDir, 0o700); err != nil {
		return nil, fmt.Errorf("nuclei: private directory: %w", err)
	}

	n.opts = nucleiEngineOptions(opts, n.execID, log)
	n.opts.Templates = []string{n.packIn}
	if err := protocolinit.Init(n.opts); err != nil {
		return nil, fmt.Errorf("nuclei: protocol clients: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	writer := nucleiOutput{log: log}
	progress := nucleiProgress{}
	// A client with NoInteractsh set never registers with an OOB server;
	// templates that need {{interactsh-url}} are skipped by nuclei.
	iopts := interactsh.DefaultOptions(writer, nil, progress)
	iopts.NoInteractsh = true
	iopts.ServerURL = ""
	if n.interactsh, err = interactsh.New(iopts); err != nil {
		return nil, fmt.Errorf("nuclei: interactsh stub: %w", err)
	}
	// nuclei's own limiter only paces HTTP requests; vigil's limiter in Run
	// paces every probe.
	n.httpLimiter = ratelimit.New(context.Background(), uint(opts.RateLimit), time.Second)

	parser := templates.NewParser()
	n.opts.Parser = parser
	catalog := disk.NewCatalog(n.packIn)
	execOpts := &protocols.ExecutorOptions{
		Output:             writer,
		Options:            n.opts,
		Progress:           progress,
		Catalog:            catalog,
		RateLimiter:        n.httpLimiter,
		Interactsh:         n.interactsh,
		Colorizer:          writer.Colorizer(),
		ResumeCfg:          nucleitypes.NewResumeCfg(),
		Parser:             parser,
		InputHelper:        input.NewHelper(),
		TemporaryDirectory: tmpDir,
		Logger:             n.opts.Logger,
	}
	start := time.Now()
	var loadErrs []error
	n.pack, loadErrs = nucleiLoad(execOpts, n.packIn)
	if len(loadErrs) > 0 {
		return nil, fmt.Errorf("nuclei: template pack: %w", errors.Join(loadErrs...))
	}
	if err := nucleiCheckPack(n.pack); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	packIDs := map[string]bool{}
	for _, t := range n.pack {
		packIDs[t.ID] = true
	}
	for _, d := range extraDirs {
		loaded, loadErrs := nucleiLoad(execOpts, d)
		for _, e := range loadErrs {
			log.Debug("extra nuclei template not loaded", "dir", d, "err", e)
		}
		var kept int
		for _, t := range loaded {
			if packIDs[t.ID] {
				log.Warn("extra template has the id of a vigil template; ignored", "template", t.ID, "path", t.Path)
				continue
			}
			packIDs[t.ID] = true
			n.extra = append(n.extra, t)
			kept++
		}
		if kept == 0 {
			why := "code, headless, file, fuzzing, workflow and self-contained templates are not run"
			if len(loadErrs) > 0 {
				why = fmt.Sprintf("%d file(s) failed to load, first: %v; %s", len(loadErrs), loadErrs[0], why)
			}
			return nil, fmt.Errorf("%w: %s: no nuclei template vigil can run (%s)", ErrNucleiTemplateDir, d, why)
		}
		if len(loadErrs) > 0 {
			log.Warn("some extra nuclei templates failed to load (debug logging lists them)", "dir", d, "failed", len(loadErrs), "first", loadErrs[0])
		}
		log.Info("extra nuclei templates loaded", "dir", d, "templates", kept)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	log.Debug("nuclei engine ready", "pack", len(n.pack), "extra", len(n.extra), "load", time.Since(start))
	return n, nil
}

// Templates returns the ids of the loaded templates: vigil's pack first,
// then the extra directories'.
func (n *Nuclei) Templates() []string {
	ids := make([]string, 0, len(n.pack)+len(n.extra))
	for _, t := range n.pack {
		ids = append(ids, t.ID)
	}
	for _, t := range n.extra {
		ids = append(ids, t.ID)
	}
	return ids
}

// Run runs every job's templates and returns what matched, one result per
// template and target. progress, if not nil, is called (never concurrently)
// after each probe with the probes done and the total; one probe is one
// template against one target.
//
// Probes that fail (refused, timed out, not the expected protocol) are not
// errors: they simply do not match. Run returns an error for a job it cannot
// run (ErrNucleiTarget, before probing anything), and ctx.Err() with the
// results so far when ctx is cancelled; it then returns as soon as the
// probes in flight end, which their timeouts bound.
func (n *Nuclei) Run(ctx context.Context, jobs []NucleiJob, progress func(done, total int)) ([]NucleiResult, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.closed {
		return nil, ErrNucleiClosed
	}

	type probe struct {
		input string
		tpl   *templates.Template
	}
	var probes []probe
	for _, job := range jobs {
		hostport, err := nucleiTarget(job.Target)
		if err != nil {
			return nil, err
		}
		httpInput := "http://" + hostport
		if job.TLS {
			httpInput = "https://" + hostport
		}
		for _, t := range n.selectTemplates(job.Tags) {
			in := hostport
			if len(t.RequestsHTTP) > 0 {
				in = httpInput
			}
			probes = append(probes, probe{input: in, tpl: t})
		}
	}

	var (
		mu      sync.Mutex
		results []NucleiResult
		byKey   = map[string]int{}
		done    int
	)
	ctx = protocolstate.WithExecutionID(ctx, &protocolstate.ExecutionContext{ExecutionID: n.execID})
	g := new(errgroup.Group)
	g.SetLimit(n.concurrency)
	for _, p := range probes {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			var events []*output.ResultEvent
			if err := n.limit.Wait(ctx); err == nil {
				events = n.probe(ctx, p.tpl, p.input)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, ev := range events {
				r, err := NucleiResultFromEvent(ev)
				if err != nil {
					if !errors.Is(err, ErrNucleiNoMatch) {
						n.log.Debug("nuclei event dropped", "template", p.tpl.ID, "target", p.input, "err", err)
					}
					continue
				}
				key := r.TemplateID + "\x00" + r.Proto + "\x00" + net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
				if i, ok := byKey[key]; ok {
					results[i].Extracted = nucleiAppendUnique(results[i].Extracted, r.Extracted...)
					continue
				}
				byKey[key] = len(results)
				results = append(results, r)
			}
			done++
			if progress != nil {
				progress(done, len(probes))
			}
			return nil
		})
	}
	_ = g.Wait()
	slices.SortFunc(results, func(a, b NucleiResult) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.TemplateID, b.TemplateID)
	})
	return results, ctx.Err()
}

// probe runs one template against one input and returns its events. A
// panic inside nuclei is logged and treated as no match, so one broken
// template cannot take the scanner down.
func (n *Nuclei) probe(ctx context.Context, tpl *templates.Template, in string) (events []*output.ResultEvent) {
	defer func() {
		if r := recover(); r != nil {
			n.log.Error("nuclei template panicked", "template", tpl.ID, "target", in, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			events = nil
		}
	}()
	args := contextargs.New(ctx)
	args.MetaInput = contextargs.NewMetaInput()
	args.MetaInput.Input = in
	start := time.Now()
	events, err := tpl.Executer.ExecuteWithResults(scan.NewScanContext(ctx, args))
	n.log.Debug("nuclei probe", "template", tpl.ID, "target", in, "events", len(events), "took", time.Since(start), "err", err)
	return events
}

// selectTemplates returns the pack templates carrying one of tags, then
// every extra template.
func (n *Nuclei) selectTemplates(tags []string) []*templates.Template {
	var out []*templates.Template
	for _, t := range n.pack {
		if slices.ContainsFunc(t.Info.Tags.ToSlice(), func(tag string) bool {
			return slices.ContainsFunc(tags, func(want string) bool { return strings.EqualFold(tag, want) })
		}) {
			out = append(out, t)
		}
	}
	return append(out, n.extra...)
}

// Close releases the engine's connections and removes its private
// directory. It waits for running Runs to finish; it is safe to call twice.
func (n *Nuclei) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.interactsh != nil {
		n.interactsh.Close()
	}
	if n.httpLimiter != nil {
		n.httpLimiter.Stop()
	}
	if n.opts != nil {
		protocolinit.Close(n.execID)
	}
	if err := os.RemoveAll(n.dir); err != nil {
		return fmt.Errorf("nuclei: remove %s: %w", n.dir, err)
	}
	return nil
}

// nucleiEngineOptions builds nuclei's options: everything that could reach
// beyond the targets is off.
func nucleiEngineOptions(opts NucleiOptions, execID string, log *slog.Logger) *nucleitypes.Options {
	o := nucleitypes.DefaultOptions()
	o.ExecutionId = execID
	o.Logger = nucleiLogger(log)
	secs := int(math.Ceil(opts.Timeout.Seconds()))
	if secs < 1 {
		secs = 1
	}
	o.Timeout = secs
	o.SetTimeouts(&nucleitypes.Timeouts{
		DialTimeout:                opts.Timeout,
		TcpReadTimeout:             opts.Timeout,
		HttpTimeout:                2 * opts.Timeout,
		HttpResponseHeaderTimeout:  2 * opts.Timeout,
		JsCompilerExecutionTimeout: 3 * opts.Timeout,
		CodeExecutionTimeout:       opts.Timeout,
	})
	o.Retries = 1
	o.RateLimit = opts.RateLimit
	o.RateLimitDuration = time.Second
	o.BulkSize = opts.Concurrency
	o.TemplateThreads = opts.Concurrency
	o.JsConcurrency = opts.Concurrency
	o.PayloadConcurrency = opts.Concurrency
	o.ResponseReadSize = 1 << 20
	o.SourceIP = opts.SourceIP
	o.NoInteractsh = true
	o.DisableHTTPProbe = true
	o.NoHostErrors = true
	o.MaxHostError = 0
	o.NoColor = true
	o.Silent = true
	// Only target-bound, vigil-runnable protocols: no code, no headless
	// browser, no local files, no self-contained (target-less) requests.
	o.EnableCodeTemplates = false
	o.Headless = false
	o.EnableFileTemplates = false
	o.EnableSelfContainedTemplates = false
	o.AllowLocalFileAccess = false
	return o
}

// nucleiLoad finds, parses and compiles the templates under dir. It reads
// local files only (nuclei's own store would also fetch URLs and keep a
// metadata cache in the user's home). Templates vigil cannot or will not
// run are left out; the errors say why files failed to parse.
func nucleiLoad(execOpts *protocols.ExecutorOptions, dir string) ([]*templates.Template, []error) {
	paths, pathErrs := execOpts.Catalog.GetTemplatesPath([]string{dir})
	var errs []error
	for p, err := range pathErrs {
		errs = append(errs, fmt.Errorf("%s: %v", p, err))
	}
	parser, _ := execOpts.Parser.(*templates.Parser)
	filter, err := templates.NewTagFilter(&templates.TagFilterConfig{})
	if err != nil || parser == nil {
		return nil, append(errs, fmt.Errorf("nuclei parser: %v", err))
	}
	var (
		mu     sync.Mutex
		loaded []*templates.Template
		g      errgroup.Group
	)
	g.SetLimit(8)
	for _, path := range paths {
		g.Go(func() (err error) {
			var tpl *templates.Template
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("panic: %v", r)
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					errs = append(errs, fmt.Errorf("%s: %v", path, err))
				case tpl != nil:
					loaded = append(loaded, tpl)
				}
			}()
			ok, err := parser.LoadTemplate(path, filter, nil, execOpts.Catalog)
			if !ok {
				return err // nil for workflows, which vigil does not run
			}
			tpl, err = templates.Parse(path, nil, execOpts)
			if err != nil {
				return err
			}
			if tpl == nil || !nucleiRunnable(tpl) {
				tpl = nil
			}
			return nil
		})
	}
	_ = g.Wait()
	slices.SortFunc(loaded, func(a, b *templates.Template) int { return strings.Compare(a.Path, b.Path) })
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return loaded, errs
}

// nucleiRunnable reports whether vigil can run t against a target.
func nucleiRunnable(t *templates.Template) bool {
	if t == nil || t.Executer == nil || len(t.Workflows) > 0 || t.SelfContained ||
		t.IsFuzzing() || (t.UsesRequestSignature() && !t.Verified) {
		return false
	}
	switch t.Type() {
	case templatetypes.CodeProtocol, templatetypes.HeadlessProtocol, templatetypes.FileProtocol, templatetypes.WorkflowProtocol:
		return false
	}
	return true
}

// nucleiCheckPack makes sure every embedded template compiled: a template
// nuclei skipped would silently turn a check off.
func nucleiCheckPack(loaded []*templates.Template) error {
	files, err := fs.Glob(nucleiPack, "templates/*.yaml")
	if err != nil {
		return err
	}
	got := map[string]bool{}
	for _, t := range loaded {
		if !strings.HasPrefix(t.ID, "vigil-") || !nucleiRunnable(t) {
			return fmt.Errorf("nuclei: template pack: %s (%s) is not a runnable vigil template", t.ID, filepath.Base(t.Path))
		}
		got[filepath.Base(t.Path)] = true
	}
	for _, f := range files {
		if !got[filepath.Base(f)] {
			return fmt.Errorf("nuclei: template pack: %s did not compile (run with debug logging for nuclei's reason)", filepath.Base(f))
		}
	}
	return nil
}

// nucleiWritePack copies the embedded pack to dir.
func nucleiWritePack(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("nuclei: template pack: %w", err)
	}
	files, err := fs.Glob(nucleiPack, "templates/*.yaml")
	if err != nil {
		return err
	}
	for _, f := range files {
		data, err := nucleiPack.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			return fmt.Errorf("nuclei: template pack: %w", err)
		}
	}
	return nil
}

// nucleiCheckDirs resolves the extra template directories and checks that
// each exists and is a directory.
func nucleiCheckDirs(dirs []string) ([]string, error) {
	out := make([]string, 0, len(dirs))
	for _, d := range dirs {
		if strings.TrimSpace(d) == "" {
			return nil, fmt.Errorf("%w: empty path", ErrNucleiTemplateDir)
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNucleiTemplateDir, d, err)
		}
		fi, err := os.Stat(abs)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrNucleiTemplateDir, d, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%w: %s: not a directory", ErrNucleiTemplateDir, d)
		}
		out = append(out, abs)
	}
	return out, nil
}

// nucleiTarget checks that target is IP:PORT and returns it normalised.
func nucleiTarget(target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrNucleiTarget, target, err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return "", fmt.Errorf("%w: %q: host is not an IP address", ErrNucleiTarget, target)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("%w: %q: bad port", ErrNucleiTarget, target)
	}
	return net.JoinHostPort(addr.Unmap().String(), strconv.Itoa(p)), nil
}

// NucleiResultFromEvent turns a nuclei result event into a NucleiResult.
// It never panics; an event without a template id or a usable host, or one
// that records no match, is an error.
func NucleiResultFromEvent(ev *output.ResultEvent) (NucleiResult, error) {
	if ev == nil {
		return NucleiResult{}, errors.New("nuclei event: nil")
	}
	if !ev.MatcherStatus {
		return NucleiResult{}, ErrNucleiNoMatch
	}
	id := strings.TrimSpace(ev.TemplateID)
	if id == "" {
		return NucleiResult{}, errors.New("nuclei event: no template id")
	}
	host, port, err := nucleiHostPort(ev)
	if err != nil {
		return NucleiResult{}, fmt.Errorf("nuclei event %s: %w", id, err)
	}
	r := NucleiResult{
		Host:             host,
		Port:             port,
		Proto:            "tcp",
		TemplateID:       id,
		Name:             ev.Info.Name,
		TemplateSeverity: ev.Info.SeverityHolder.Severity.String(),
		At:               ev.Timestamp.UTC(),
	}
	if r.Name == "" {
		r.Name = id
	}
	if p, ok := ev.Info.Metadata["vigil-proto"].(string); ok && strings.EqualFold(p, "udp") {
		r.Proto = "udp"
	}
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	r.Extracted = nucleiAppendUnique(nil, ev.ExtractedResults...)
	where := ev.Matched
	if where == "" {
		where = net.JoinHostPort(host, strconv.Itoa(port))
	}
	r.Details = r.Name + " at " + where
	if ev.MatcherName != "" {
		r.Details += " (" + ev.MatcherName + ")"
	}
	r.Details = nucleiOneLine(r.Details, 300)
	return r, nil
}

// NucleiResultFromJSON is NucleiResultFromEvent for one line of nuclei's
// JSON output (nuclei -jsonl).
func NucleiResultFromJSON(line []byte) (NucleiResult, error) {
	var ev output.ResultEvent
	if err := json.Unmarshal(line, &ev); err != nil {
		return NucleiResult{}, fmt.Errorf("nuclei event: %w", err)
	}
	return NucleiResultFromEvent(&ev)
}

// nucleiHostPort finds the target address of an event. Protocols fill the
// event differently: Host may be IP, IP:PORT or a URL; Port and IP may be
// set apart.
func nucleiHostPort(ev *output.ResultEvent) (string, int, error) {
	var host, portStr string
	raw := strings.TrimSpace(ev.Host)
	switch {
	case strings.Contains(raw, "://"):
		u, err := url.Parse(raw)
		if err != nil {
			return "", 0, fmt.Errorf("host %q: %v", raw, err)
		}
		host, portStr = u.Hostname(), u.Port()
		if portStr == "" {
			switch strings.ToLower(u.Scheme) {
			case "http":
				portStr = "80"
			case "https":
				portStr = "443"
			}
		}
	default:
		if h, p, err := net.SplitHostPort(raw); err == nil {
			host, portStr = h, p
		} else {
			host = strings.Trim(raw, "[]")
		}
	}
	if ip, err := netip.ParseAddr(strings.TrimSpace(ev.IP)); err == nil && ip.Zone() == "" {
		host = ip.Unmap().String()
	}
	if ev.Port != "" {
		portStr = ev.Port
	}
	if host == "" {
		return "", 0, errors.New("no host")
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	port, err := strconv.Atoi(strings.TrimSpace(portStr))
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q", portStr)
	}
	return host, port, nil
}

// nucleiAppendUnique appends the non-empty values of add not already in
// list, each cleaned to one line.
func nucleiAppendUnique(list []string, add ...string) []string {
	for _, v := range add {
		v = nucleiOneLine(v, 500)
		if v != "" && !slices.Contains(list, v) {
			list = append(list, v)
		}
	}
	return list
}

// nucleiOneLine collapses whitespace and control characters and cuts s to
// at most max bytes on a rune boundary.
func nucleiOneLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == ' ' || r == '\u00a0' || r == '\ufffd' {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+len(string(r)) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

func nucleiRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
