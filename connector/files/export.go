package files

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/parquet-go/parquet-go"

	"erasure"
)

// ExportRow is one row of an export: one identifier of one queued task.
type ExportRow struct {
	TaskID     int64  `json:"task_id" parquet:"task_id"`
	Identifier string `json:"identifier" parquet:"identifier,dict"`
	Value      string `json:"value" parquet:"value"`
}

// WriteExport writes the queued identifiers of subjects for a sweep run by an external engine:
// one row per task and identifier whose type is in types (every type when types is empty),
// ordered by task id, type and value, as JSON lines ({"task_id":…,"identifier":…,"value":…})
// or as a Parquet file with the columns task_id (INT64), identifier and value (UTF-8 strings).
// It returns the number of rows written. The export holds identifiers in clear: the caller
// decides where it goes. EINVALID for an unknown format.
func WriteExport(w io.Writer, format string, subjects []erasure.SweepSubject, types []string) (int, error) {
	rows := exportRows(subjects, types)
	switch format {
	case "jsonl":
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return 0, fmt.Errorf("files: writing export: %w", err)
			}
		}
		if err := bw.Flush(); err != nil {
			return 0, fmt.Errorf("files: writing export: %w", err)
		}
	case "parquet":
		pw := parquet.NewGenericWriter[ExportRow](w, parquet.Compression(&parquet.Zstd))
		if _, err := pw.Write(rows); err != nil {
			return 0, fmt.Errorf("files: writing export: %w", err)
		}
		if err := pw.Close(); err != nil {
			return 0, fmt.Errorf("files: writing export: %w", err)
		}
	default:
		return 0, erasure.Errorf(erasure.EINVALID, "export format %q is not one of jsonl, parquet", format)
	}
	return len(rows), nil
}

func exportRows(subjects []erasure.SweepSubject, types []string) []ExportRow {
	want := map[string]bool{}
	for _, t := range types {
		want[t] = true
	}
	var rows []ExportRow
	for _, s := range subjects {
		for _, id := range s.Subject {
			if len(want) == 0 || want[id.Type] {
				rows = append(rows, ExportRow{TaskID: s.TaskID, Identifier: id.Type, Value: id.Value})
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.TaskID != b.TaskID {
			return a.TaskID < b.TaskID
		}
		if a.Identifier != b.Identifier {
			return a.Identifier < b.Identifier
		}
		return a.Value < b.Value
	})
	return rows
}
