package agentsrv

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/vigilhq/vigil/agent/protocol"
	"github.com/vigilhq/vigil/config"
	"github.com/vigilhq/vigil/observe"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/scanrun"
	"github.com/vigilhq/vigil/store"
)

// ErrBatchTooLarge is wrapped by DecodeBatch for a batch over
// protocol.MaxBatchBytes decompressed or protocol.MaxBatchObservations.
var ErrBatchTooLarge = errors.New("batch too large")

// DecodeBatch reads one batch as sent: gzip-compressed when gzipped,
// decompressed to at most protocol.MaxBatchBytes, with at most
// protocol.MaxBatchObservations observations, a known kind, and the ids it
// needs. Unknown fields are ignored, so a newer agent's additions do not
// break an older server.
func DecodeBatch(body []byte, gzipped bool) (protocol.Batch, error) {
	var b protocol.Batch
	var r io.Reader = bytes.NewReader(body)
	if gzipped {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return b, fmt.Errorf("batch is not gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	}
	raw, err := io.ReadAll(io.LimitReader(r, protocol.MaxBatchBytes+1))
	if err != nil {
		return b, fmt.Errorf("batch: decompress: %w", err)
	}
	if len(raw) > protocol.MaxBatchBytes {
		return b, fmt.Errorf("%w: over %d bytes decompressed", ErrBatchTooLarge, protocol.MaxBatchBytes)
	}
	if err := json.Unmarshal(raw, &b); err != nil {
		return b, fmt.Errorf("batch is not JSON: %w", err)
	}
	switch {
	case len(b.Observations) > protocol.MaxBatchObservations:
		return b, fmt.Errorf("%w: %d observations, at most %d", ErrBatchTooLarge, len(b.Observations), protocol.MaxBatchObservations)
	case b.ID == "" || len(b.ID) > 256:
		return b, errors.New("batch: id missing or over 256 bytes")
	case b.Scan.ID == "" || len(b.Scan.ID) > 128:
		return b, errors.New("batch: scan.id missing or over 128 bytes")
	case b.Kind != protocol.BatchBegin && b.Kind != protocol.BatchObservations && b.Kind != protocol.BatchFinish:
		return b, fmt.Errorf("batch: unknown kind %q (want begin, observations or finish)", b.Kind)
	case b.Kind != protocol.BatchObservations && len(b.Observations) > 0:
		return b, fmt.Errorf("batch: a %s batch carries no observations", b.Kind)
	}
	return b, nil
}

// errForeign is an agent writing about a place that is not its own.
type errForeign struct{ msg string }

func (e errForeign) Error() string { return e.msg }

// checkLocation refuses a batch that names anything outside the agent's
// location: the scan's locations and vantages, each observation, and
// organisation-wide sources (accounts, packages), which are the server's.
func checkLocation(b *protocol.Batch, loc string) error {
	for _, l := range b.Scan.Locations {
		if l != loc {
			return errForeign{fmt.Sprintf("scan %s names location %q; this agent reports for %q only", b.Scan.ID, l, loc)}
		}
	}
	for l := range b.Scan.Vantages {
		if l != loc {
			return errForeign{fmt.Sprintf("scan %s has vantages at location %q; this agent reports for %q only", b.Scan.ID, l, loc)}
		}
	}
	for _, src := range b.Scan.Sources {
		// An agent reads only its location's telegraf inputs, under names
		// qualified by the location (protocol.AgentSourceName): a name of
		// the server's own (csv:emr, telegraf:x509_cert) would let the
		// scan resolve the organisation's findings.
		name, at, ok := protocol.AgentSourceOf(src)
		plugin, isTelegraf := strings.CutPrefix(name, "telegraf:")
		if !ok || at != loc || !isTelegraf || !slices.Contains(config.TelegrafPlugins, plugin) {
			return errForeign{fmt.Sprintf("scan %s claims source %q: an agent reads only its location's telegraf inputs (telegraf:PLUGIN@%s); identity and software sources are read by the server", b.Scan.ID, src, loc)}
		}
	}
	for i, o := range b.Observations {
		if o.Location != loc {
			return errForeign{fmt.Sprintf("observation %d (%s %s) is at location %q; this agent reports for %q only", i, o.Kind, o.Target(), o.Location, loc)}
		}
	}
	return nil
}

func (s *Server) handleBatch(ctx context.Context, w http.ResponseWriter, r *http.Request, c *caller) {
	enc := r.Header.Get("Content-Encoding")
	if enc != "" && enc != "gzip" && enc != "identity" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Encoding "+enc+": send gzip")
		return
	}
	b, err := DecodeBatch(c.body, enc == "gzip")
	if errors.Is(err, ErrBatchTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	} else if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	log := s.log.With("tenant", c.tenant.ID, "agent", c.agent.ID, "batch", b.ID, "kind", b.Kind, "scan", b.Scan.ID)
	if err := checkLocation(&b, c.agent.Location); err != nil {
		log.Warn("agent batch refused", "reason", err.Error())
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	cfg, engine := c.tenant.Current()
	loc, ok := cfg.Location(c.agent.Location)
	if !ok {
		writeError(w, http.StatusConflict, fmt.Sprintf("location %q is no longer in the server's configuration", c.agent.Location))
		return
	}
	ack := protocol.BatchAck{ID: b.ID}
	st := c.tenant.Store
	switch b.Kind {
	case protocol.BatchBegin:
		ack.Duplicate, err = st.BeginAgentScan(ctx, c.agent.ID, b.ID, b.Scan)
	case protocol.BatchObservations:
		ack.Duplicate, err = st.AddAgentObservations(ctx, c.agent.ID, b.ID, b.Scan.ID, b.Observations)
	case protocol.BatchFinish:
		ack.Duplicate, ack.Findings, err = s.finish(ctx, c, &b, cfg, engine, loc)
		if err == nil && !ack.Duplicate {
			log.Info("agent scan stored", "complete", b.Scan.Complete, "findings", ack.Findings)
			if c.tenant.Stored != nil {
				c.tenant.Stored()
			}
		}
	}
	if err != nil {
		code, reason, msg := http.StatusInternalServerError, "", "batch not stored: try again later"
		switch {
		case errors.Is(err, store.ErrAgentRevoked):
			code, reason, msg = http.StatusUnauthorized, protocol.CodeRevoked, "agent "+c.agent.ID+" was revoked"
		case errors.Is(err, store.ErrForeignScan):
			code, msg = http.StatusForbidden, "scan "+b.Scan.ID+" is not this agent's"
		case errors.Is(err, store.ErrUnknownScan):
			code, reason, msg = http.StatusConflict, protocol.CodeScanNotBegun, "scan "+b.Scan.ID+" was never begun: send its begin batch first"
		case errors.Is(err, store.ErrScanFinished):
			code, reason, msg = http.StatusConflict, protocol.CodeScanFinished, "scan "+b.Scan.ID+" is already finished"
		case errors.Is(err, context.DeadlineExceeded):
			code, msg = http.StatusServiceUnavailable, "the server took too long to store the batch: send it again"
		}
		if code >= 500 {
			log.Error("agent batch not stored", "error", err)
		} else {
			log.Warn("agent batch refused", "reason", msg)
		}
		writeCoded(w, code, reason, msg)
		return
	}
	writeJSON(w, ack)
}

// finish judges the scan's stored observations with the tenant's rules
// and finishes it. A batch already applied, or a scan already finished,
// is a duplicate and is not judged again.
func (s *Server) finish(ctx context.Context, c *caller, b *protocol.Batch, cfg *config.Config, engine *rules.Engine, loc *config.Location) (dup bool, findings int, err error) {
	st := c.tenant.Store
	if dup, err := st.AgentBatchApplied(ctx, c.agent.ID, b.ID); err != nil || dup {
		return dup, 0, err
	}
	obs, err := st.Observations(ctx, b.Scan.ID)
	if err != nil {
		return false, 0, err
	}
	scan := b.Scan
	if scan.FinishedAt.IsZero() {
		scan.FinishedAt = s.now().UTC()
	}
	if len(scan.Locations) == 0 {
		scan.Locations = []string{loc.ID}
	}
	var fs []observe.Finding
	if engine != nil {
		ev := scanrun.Evaluate(ctx, cfg, engine, &scan, []*config.Location{loc}, obs)
		fs = ev.Findings
	}
	// Rules may only judge this location: a finding elsewhere would be a
	// bug, and must not resolve or open anything there.
	fs = slices.DeleteFunc(fs, func(f observe.Finding) bool { return f.Location != loc.ID })
	current, _, dup, err := st.FinishAgentScan(ctx, c.agent.ID, b.ID, scan, fs)
	return dup, len(current), err
}
