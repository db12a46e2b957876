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
