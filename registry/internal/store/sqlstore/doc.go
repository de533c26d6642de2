// Package sqlstore holds what the SQL implementations of store.Store
// (store/sqlite, store/postgres) share apart from their SQL text and their
// transactions: how records map to columns and back (MeshRow, PSKRow,
// TokenRow, NodeRow, the value conversions and Collect over a result), and
// the decisions a write transaction makes between its statements (Join:
// token admission, the name rule, what a join stores; Allocate: which
// address a key gets).
//
// The stores keep the schema in common: times are unix nanoseconds (0:
// none), lists are JSON arrays in TEXT columns ("[]" when empty), an SSH
// endpoint is its text ("" when none) and keys are raw bytes. A store runs
// the shared logic through small interfaces (JoinTx, Leases) whose every
// method is one statement in its own dialect, inside the transaction the
// store began; nothing here opens a transaction or writes SQL.
package sqlstore
