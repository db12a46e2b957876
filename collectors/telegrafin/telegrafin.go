// Package telegrafin runs telegraf input plugins (x509_cert, net_response)
// as vigil collectors: it builds the plugin from telegraf's registry with
// the options from vigil's config, gathers on demand, and turns each metric
// into a KindMetric observation with the facts vigil's rules know
// (docs/telegraf.md lists them).
package telegrafin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/inputs"
	// The inputs vigil runs register themselves here; config/validate.go
	// names the same set.
	_ "github.com/influxdata/telegraf/plugins/inputs/net_response"
	_ "github.com/influxdata/telegraf/plugins/inputs/x509_cert"

	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
)

// DefaultTimeout bounds one Collect when Input.Timeout is zero. The
// plugins have their own per-connection timeouts (x509_cert 5s per source,
// net_response 1s); this one covers a plugin with many sources.
const DefaultTimeout = 30 * time.Second

// MaxMetrics bounds the metrics one gather may produce (a certificate glob
// over a directory of thousands of files); more are dropped and reported
// as an error.
const MaxMetrics = 10000

// ErrBusy is returned by Collect while a gather that ran past its timeout
// is still running: telegraf plugins cannot be cancelled, and gathering
// twice at once is not safe for them.
var ErrBusy = errors.New("the previous gather is still running")

// Input is one configured telegraf input plugin, ready to gather.
type Input struct {
	plugin   string
	location string
	input    telegraf.Input

	// Timeout bounds one Collect; zero means DefaultTimeout. A context
	// deadline that comes sooner wins.
	Timeout time.Duration
	// Logger receives the plugin's log messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for metrics a plugin leaves unstamped; nil means
	// time.Now.
	Now func() time.Time

	busy chan struct{} // holds a token while a gather runs
	wg   sync.WaitGroup

	mu  sync.Mutex
	cur *accumulator // the running gather's, for errors the plugin logs
}

// Available lists the telegraf inputs vigil can run.
func Available() []string {
	var out []string
	for name := range inputs.Inputs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// New builds the input in.Plugin from telegraf's registry, applies
// in.Options onto it as telegraf.conf would, and runs its Init. An option
// the plugin does not take is an *OptionError wrapping ErrUnknownOption.
func New(in config.TelegrafInput) (*Input, error) {
	create, ok := inputs.Inputs[in.Plugin]
	if !ok {
		return nil, fmt.Errorf("unknown telegraf input %q: vigil runs %s", in.Plugin, strings.Join(Available(), ", "))
	}
	p := create()
	if _, ok := p.(telegraf.ServiceInput); ok {
		return nil, fmt.Errorf("telegraf input %s is a service input; vigil runs only inputs that gather on demand", in.Plugin)
	}
	i := &Input{plugin: in.Plugin, location: in.Location, input: p, busy: make(chan struct{}, 1)}
	if err := applyOptions(in.Plugin, p, in.Options); err != nil {
		return nil, err
	}
	setLogger(p, &pluginLogger{in: i})
	if init, ok := p.(telegraf.Initializer); ok {
		if err := init.Init(); err != nil {
			return nil, fmt.Errorf("telegraf input %s: %w", in.Plugin, err)
		}
	}
	return i, nil
}

// NewAll builds every configured input. Errors name the config field,
// e.g. "telegraf.inputs[1].options.sourcez: unknown option ...".
func NewAll(cfg config.TelegrafSettings) ([]*Input, error) {
	var out []*Input
	var errs []error
	for idx, in := range cfg.Inputs {
		i, err := New(in)
		if err != nil {
			var oe *OptionError
			if errors.As(err, &oe) {
				errs = append(errs, fmt.Errorf("telegraf.inputs[%d].%w", idx, err))
			} else {
				errs = append(errs, fmt.Errorf("telegraf.inputs[%d]: %w", idx, err))
			}
			continue
		}
		out = append(out, i)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// setLogger fills the plugin's `Log telegraf.Logger` field, as telegraf's
// agent does; plugins call it without checking for nil.
func setLogger(p telegraf.Input, l telegraf.Logger) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	f := v.Elem().FieldByName("Log")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[telegraf.Logger]() {
		f.Set(reflect.ValueOf(l))
	}
}

// Name identifies the collector: "telegraf:" + plugin.
func (i *Input) Name() string { return "telegraf:" + i.plugin }

// Plugin is the telegraf input name.
func (i *Input) Plugin() string { return i.plugin }

// Collect gathers once and returns one observation per metric. It returns
// when the plugin finishes, the timeout passes or ctx is done, whichever
// is first; on a timeout it returns what was gathered so far with an
// error, and the abandoned gather keeps the input busy (ErrBusy) until it
// ends. Errors the plugin reports make the collection incomplete: the
// observations it did produce come back with the error.
func (i *Input) Collect(ctx context.Context) ([]observe.Observation, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", i.Name(), err)
	}
	select {
	case i.busy <- struct{}{}:
	default:
		return nil, fmt.Errorf("%s: %w", i.Name(), ErrBusy)
	}
	now := i.Now
	if now == nil {
		now = time.Now
	}
	timeout := i.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	acc := newAccumulator(now, MaxMetrics)
	i.mu.Lock()
	i.cur = acc
	i.mu.Unlock()

	done := make(chan error, 1)
	i.wg.Add(1)
	go func() {
		defer i.wg.Done()
		defer func() { <-i.busy }()
		defer func() {
			if v := recover(); v != nil {
				done <- fmt.Errorf("plugin panicked: %v", v)
			}
		}()
		done <- i.input.Gather(acc)
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var gatherErr error
	select {
	case gatherErr = <-done:
	case <-timer.C:
		gatherErr = fmt.Errorf("gather did not finish within %s", timeout)
	case <-ctx.Done():
		gatherErr = ctx.Err()
	}
	i.mu.Lock()
	i.cur = nil
	i.mu.Unlock()
	ms, errs, dropped := acc.close()
	if gatherErr != nil {
		errs = append(errs, gatherErr)
	}
	if dropped > 0 {
		errs = append(errs, fmt.Errorf("%d metrics over the limit of %d were dropped", dropped, MaxMetrics))
	}
	obs := make([]observe.Observation, 0, len(ms))
	for _, m := range ms {
		obs = append(obs, Observation(m, i.Name(), i.location))
	}
	if len(errs) > 0 {
		return obs, fmt.Errorf("%s: %w", i.Name(), errors.Join(errs...))
	}
	return obs, nil
}

// gatherError records an error the plugin logged during a gather.
func (i *Input) gatherError(err error) {
	i.mu.Lock()
	acc := i.cur
	i.mu.Unlock()
	if acc != nil {
		acc.AddError(err)
	}
}

// Close waits for a gather abandoned by a timeout to end. The plugins vigil
// runs hold no resources between gathers.
func (i *Input) Close() error {
	i.wg.Wait()
	return nil
}
