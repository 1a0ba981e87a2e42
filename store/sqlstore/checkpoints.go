package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"erasure"
)

// SaveAuditCheckpoint implements erasure.CheckpointStore.
func (db *DB) SaveAuditCheckpoint(ctx context.Context, cp erasure.AuditCheckpoint) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := db.exec(ctx, tx, `INSERT INTO audit_checkpoints (format, deployment, block, events, hash, at, public_key, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			cp.Format, cp.Deployment, cp.Block, cp.Events, cp.Hash, ms(cp.Time), cp.PublicKey, cp.Signature)
		return err
	})
}

// AuditCheckpoints implements erasure.CheckpointStore.
func (db *DB) AuditCheckpoints(ctx context.Context, limit int) ([]erasure.AuditCheckpoint, error) {
	q := `SELECT format, deployment, block, events, hash, at, public_key, signature FROM audit_checkpoints ORDER BY seq DESC`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := db.readQuery(ctx, q)
	if err != nil {
		return nil, unavailable(err)
	}
	defer rows.Close()
	var out []erasure.AuditCheckpoint
	for rows.Next() {
		var cp erasure.AuditCheckpoint
		var at int64
		if err := rows.Scan(&cp.Format, &cp.Deployment, &cp.Block, &cp.Events, &cp.Hash, &at, &cp.PublicKey, &cp.Signature); err != nil {
			return nil, err
		}
		cp.Time = fromMS(at)
		out = append(out, cp)
	}
	return out, rows.Err()
}
