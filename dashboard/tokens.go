package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/vigilhq/vigil/users"
)

// apiTokens keeps personal API tokens in the users database, in the
// dashboard's own table: users owns its auth_ tables, the dashboard only
// adds this one. Only the SHA-256 of a token is stored; the token is shown
// once, when it is made.
type apiTokens struct{ db *sql.DB }

// apiTokenPrefix marks vigil API tokens, so secret scanners can find a
// leaked one.
const apiTokenPrefix = "vgl_"

// maxTokenAge bounds a token's life; an expired one is refused.
const maxTokenAge = 366 * 24 * time.Hour

const createTokens = `CREATE TABLE IF NOT EXISTS dashboard_api_tokens (
	id         TEXT PRIMARY KEY, -- hex SHA-256 of the token
	tenant     TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	name       TEXT NOT NULL,
	created_at TEXT NOT NULL,
	expires_at TEXT NOT NULL,
	last_used  TEXT NOT NULL DEFAULT ''
)`

func newAPITokens(db *sql.DB) (*apiTokens, error) {
	if _, err := db.Exec(createTokens); err != nil {
		return nil, fmt.Errorf("API tokens table: %w", err)
	}
	return &apiTokens{db: db}, nil
}

// apiToken is a stored token's record.
type apiToken struct {
	ID, Name         string
	Tenant           users.TenantID
	UserID           string
	Created, Expires time.Time
	LastUsed         time.Time
}

var errNoToken = errors.New("unknown or expired API token")

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

const tokTime = time.RFC3339Nano

// create makes a token for the principal and returns it (shown once).
func (a *apiTokens) create(ctx context.Context, p users.Principal, name string, now time.Time) (string, apiToken, error) {
	b := make([]byte, 32)
	rand.Read(b)
	tok := apiTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	rec := apiToken{ID: hashToken(tok), Name: name, Tenant: p.Tenant, UserID: p.UserID, Created: now.UTC(), Expires: now.UTC().Add(maxTokenAge)}
	_, err := a.db.ExecContext(ctx, `INSERT INTO dashboard_api_tokens (id, tenant, user_id, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		rec.ID, string(rec.Tenant), rec.UserID, rec.Name, rec.Created.Format(tokTime), rec.Expires.Format(tokTime))
	if err != nil {
		return "", apiToken{}, fmt.Errorf("store API token: %w", err)
	}
	return tok, rec, nil
}

// lookup returns the record of a live token.
func (a *apiTokens) lookup(ctx context.Context, tok string, now time.Time) (apiToken, error) {
	if !strings.HasPrefix(tok, apiTokenPrefix) || len(tok) > 100 {
		return apiToken{}, errNoToken
	}
	rec := apiToken{ID: hashToken(tok)}
	var tenant, created, expires, used string
	err := a.db.QueryRowContext(ctx, `SELECT tenant, user_id, name, created_at, expires_at, last_used FROM dashboard_api_tokens WHERE id = ?`, rec.ID).
		Scan(&tenant, &rec.UserID, &rec.Name, &created, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return apiToken{}, errNoToken
	} else if err != nil {
		return apiToken{}, err
	}
	rec.Tenant = users.TenantID(tenant)
	rec.Created, _ = time.Parse(tokTime, created)
	rec.Expires, _ = time.Parse(tokTime, expires)
	if !now.Before(rec.Expires) {
		return apiToken{}, errNoToken
	}
	// Record use at most once a minute: a busy script should not write on
	// every request.
	last, _ := time.Parse(tokTime, used)
	if now.Sub(last) > time.Minute {
		a.db.ExecContext(ctx, `UPDATE dashboard_api_tokens SET last_used = ? WHERE id = ?`, now.UTC().Format(tokTime), rec.ID)
	}
	rec.LastUsed = last
	return rec, nil
}

// list returns the user's tokens, newest first.
func (a *apiTokens) list(ctx context.Context, p users.Principal) ([]apiToken, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT id, name, created_at, expires_at, last_used FROM dashboard_api_tokens WHERE tenant = ? AND user_id = ? ORDER BY created_at DESC`,
		string(p.Tenant), p.UserID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []apiToken
	for rows.Next() {
		r := apiToken{Tenant: p.Tenant, UserID: p.UserID}
		var created, expires, used string
		if err := rows.Scan(&r.ID, &r.Name, &created, &expires, &used); err != nil {
			return nil, err
		}
		r.Created, _ = time.Parse(tokTime, created)
		r.Expires, _ = time.Parse(tokTime, expires)
		r.LastUsed, _ = time.Parse(tokTime, used)
		out = append(out, r)
	}
	return out, rows.Err()
}

// revoke deletes one of the user's tokens by the first 12 characters of
// its id, reporting whether one was deleted.
func (a *apiTokens) revoke(ctx context.Context, p users.Principal, idPrefix string) (bool, error) {
	if len(idPrefix) != 12 || strings.Trim(idPrefix, "0123456789abcdef") != "" {
		return false, nil
	}
	res, err := a.db.ExecContext(ctx, `DELETE FROM dashboard_api_tokens WHERE tenant = ? AND user_id = ? AND substr(id, 1, 12) = ?`,
		string(p.Tenant), p.UserID, idPrefix)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
