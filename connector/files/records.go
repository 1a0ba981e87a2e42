package files

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/gzip"
)

// maxLine bounds one JSON line or CSV record, so that a file without newlines cannot exhaust
// memory.
const maxLine = 256 << 20

// recordReader yields a partition's records (a JSON line, a CSV record with its quoted line
// breaks) as their original bytes, with the key value when the record has one.
type recordReader interface {
	// next returns the record's bytes (valid until the next call), its key and whether it has
	// one, and whether it is a data row (a CSV header is not); io.EOF at the end.
	next() (raw, key []byte, hasKey, row bool, err error)
}

// processRecords runs a JSON lines (see processLines) or CSV partition. Kept records are copied byte for byte.
// The temporary file is only created at the first matching row: the bytes before it are then
// copied from a second read of the partition, so that a partition without a match is read once
// and written never.
func (c *Connector) processRecords(f *os.File, cr *countingReader, rel string, ks *keySet, md mode, out *processOut, st *stats) error {
	name := c.abs(rel)
	gz := c.gzipped(rel)
	r, err := c.decompress(name, cr, gz)
	if err != nil {
		return err
	}
	if c.cfg.Format == formatJSONL {
		return c.processLines(r, name, gz, cr, ks, md, out, st)
	}
	rr, err := c.newRecordReader(name, r)
	if err != nil {
		return err
	}
	var off int64
	writing := false
	for {
		raw, key, has, row, err := rr.next()
		if err == io.EOF {
			break
		} else if err != nil {
			if gz && errors.Is(err, io.ErrUnexpectedEOF) {
				return badInput(name, "gzip stream is truncated")
			}
			if _, ok := err.(*readError); ok {
				return err.(*readError).err
			}
			return badInput(name, "%v", err)
		}
		if md == modeCheck {
			return nil // the header (CSV) or first line parsed
		}
		if row {
			st.rows++
		}
		if has && row && ks.has(key) {
			st.removed++
			if md == modeRewrite {
				ks.removedRow(key)
			}
			switch md {
			case modeFind:
				return errFound
			case modeRewrite:
				if !writing {
					if err := out.sink.open(); err != nil {
						return err
					}
					if err := c.copyPrefix(name, gz, off, out.sink.w, cr); err != nil {
						return err
					}
					writing = true
				}
			}
		} else {
			if has && row && len(key) > 0 {
				out.hash(key)
			}
			if writing {
				if _, err := out.sink.w.Write(raw); err != nil {
					return &readError{fmt.Errorf("files: writing %s: %w", out.sink.path, err)}
				}
			}
		}
		off += int64(len(raw))
	}
	if c.cfg.Format == formatCSV && md == modeCheck {
		return badInput(name, "has no header row")
	}
	return nil
}

// readError carries an I/O failure through a record reader untouched (not bad input).
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

func (c *Connector) decompress(name string, r io.Reader, gz bool) (io.Reader, error) {
	if !gz {
		return r, nil
	}
	z, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<20))
	if err == io.EOF {
		return eofReader{}, nil // an empty file is an empty partition
	} else if err != nil {
		return nil, badInput(name, "not a gzip stream: %v", err)
	}
	return z, nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// copyPrefix writes the first n (decompressed) bytes of the partition to w.
func (c *Connector) copyPrefix(name string, gz bool, n int64, w io.Writer, count *countingReader) error {
	f, err := os.Open(name)
	if err != nil {
		return classifyIO(fmt.Errorf("files: %s: %w", name, err))
	}
	defer f.Close()
	cr := &countingReader{f: f, tr: count.tr, ctx: count.ctx}
	r, err := c.decompress(name, cr, gz)
	if err != nil {
		return err
	}
	_, err = io.CopyN(w, r, n)
	count.n += cr.n
	if err != nil {
		return classifyIO(fmt.Errorf("files: copying the start of %s: %w", name, err))
	}
	return nil
}

func (c *Connector) newRecordReader(name string, r io.Reader) (recordReader, error) {
	rec := &recorder{r: r}
	cr := csv.NewReader(rec)
	cr.ReuseRecord = true
	return &csvReader{rec: rec, cr: cr, field: c.cfg.Key.Field, col: -1}, nil
}

// recorder keeps the bytes the CSV reader consumed, so that each record's original bytes can
// be cut out by offset.
type recorder struct {
	r    io.Reader
	data []byte
	base int64 // offset of data[0]
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.data = append(r.data, p[:n]...)
	return n, err
}

// csvReader reads CSV records; the first is the header, which names the key column.
type csvReader struct {
	rec   *recorder
	cr    *csv.Reader
	field string
	col   int
	start int64
}

func (c *csvReader) next() (raw, key []byte, has, row bool, err error) {
	// Forget the bytes of the previous record.
	c.rec.data = c.rec.data[c.start-c.rec.base:]
	c.rec.base = c.start
	fields, err := c.cr.Read()
	if err != nil {
		return nil, nil, false, false, err
	}
	end := c.cr.InputOffset()
	if end-c.rec.base > int64(len(c.rec.data)) || end-c.start > maxLine {
		return nil, nil, false, false, fmt.Errorf("record ending at byte %d is too long", end)
	}
	raw = c.rec.data[c.start-c.rec.base : end-c.rec.base]
	c.start = end
	if c.col < 0 {
		for i, f := range fields {
			if i == 0 && len(f) >= 3 && f[:3] == "\ufeff" {
				f = f[3:]
			}
			if f == c.field {
				if c.col >= 0 {
					return nil, nil, false, false, fmt.Errorf("header names column %q twice", c.field)
				}
				c.col = i
			}
		}
		if c.col < 0 {
			return nil, nil, false, false, fmt.Errorf("header has no column %q", c.field)
		}
		return raw, nil, false, false, nil
	}
	return raw, []byte(fields[c.col]), true, true, nil
}
