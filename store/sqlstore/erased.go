package sqlstore

import (
	"context"
	"fmt"
)

// ErasedHashes returns the keyed hashes ("type:hex", see audit.Hasher.Identifier) of the
// identifiers of every completed request, each once, sorted. `erasure scan` compares them with
// the keyed hashes of the values it samples, to find data of erased subjects that is still
// there. Identifiers of cancelled, failed or open requests are left out: their data may rightly
// remain. It reads only; the hashes are kept for ever, so the answer grows with the store.
func (db *DB) ErasedHashes(ctx context.Context) ([]string, error) {
	rows, err := db.readQuery(ctx, `SELECT DISTINCT i.hash FROM identifiers i
		JOIN requests r ON r.id = i.request_id
		WHERE r.status = 'completed'
		ORDER BY i.hash`)
	if err != nil {
		return nil, fmt.Errorf("store: reading the hashes of erased identifiers: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, fmt.Errorf("store: reading the hashes of erased identifiers: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading the hashes of erased identifiers: %w", err)
	}
	return out, nil
}
