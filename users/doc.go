// Package users holds the dashboard's accounts: argon2id passwords, TOTP
// second factors, login throttling, sessions with CSRF tokens, roles scoped
// to tenants and locations, the first-start setup token and the audit trail.
// It has no HTTP framework dependency and keeps its state behind the small
// Store interface, which users/sqlite implements on vigil's SQLite database.
package users
