package sqlstore

import "github.com/tunnelmesh/tunnelmesh/registry/internal/store"

// Scanner is one result row (database/sql's *sql.Row and *sql.Rows,
// pgx.Row and pgx.Rows).
type Scanner interface {
	Scan(dest ...any) error
}

// Rows is a query's result (database/sql's *sql.Rows, pgx.Rows); the
// caller closes it.
type Rows interface {
	Scanner
	Next() bool
	Err() error
}

// Collect decodes every row of rows with scan, in order; no rows is nil.
func Collect[T any](rows Rows, scan func(Scanner) (T, error)) ([]T, error) {
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// ScanToken decodes a row of the token columns (TokenRow.Dest).
func ScanToken(r Scanner) (store.Token, error) {
	var row TokenRow
	if err := r.Scan(row.Dest()...); err != nil {
		return store.Token{}, err
	}
	return row.Token()
}
