package postgres

import (
	"context"
	"testing"

	"github.com/vigilhq/vigil/internal/pgtest"
	"github.com/vigilhq/vigil/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// The shared store suite, on a real PostgreSQL server.
func TestSuite(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Dialect: storetest.Postgres,
		New:     pgtest.URL,
		Open: func(ctx context.Context, url string, o storetest.Options) (storetest.Backend, error) {
			var opts []Option
			if o.Now != nil {
				opts = append(opts, WithClock(o.Now))
			}
			if o.Key != nil {
				opts = append(opts, WithEvidenceKey(o.Key))
			}
			if o.ReadOnly {
				opts = append(opts, ReadOnly())
			}
			return Open(ctx, url, opts...)
		},
	})
}

// BenchmarkAgentIngest: 100 agents push scans at once (begin, 130
// observations, finish with 30 findings); see storetest.BenchAgentIngest.
func BenchmarkAgentIngest(b *testing.B) {
	storetest.BenchAgentIngest(b, storetest.Harness{Dialect: storetest.Postgres, New: pgtest.URL,
		Open: func(ctx context.Context, url string, o storetest.Options) (storetest.Backend, error) {
			return Open(ctx, url, WithEvidenceKey(o.Key))
		}}, 100)
}
