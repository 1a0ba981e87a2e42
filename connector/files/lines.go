package files

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// lineChunk is how much of a JSON lines partition is read at once; a line longer than that
// grows the buffer, up to maxLine.
const lineChunk = 4 << 20

var linePool = sync.Pool{New: func() any { b := make([]byte, lineChunk); return &b }}

// processLines runs a JSON lines partition (r is its decompressed stream) in the given mode.
// It reads big chunks, finds each line's key in place, and writes each run of consecutive
// kept lines with one call, so that kept lines are copied byte for byte without a per-line
// copy. Like processRecords, it creates the temporary file only at the first matching row,
// copying the bytes before that row from a second read of the partition.
func (c *Connector) processLines(r io.Reader, name string, gz bool, cr *countingReader, ks *keySet, md mode, out *processOut, st *stats) error {
	bp := linePool.Get().(*[]byte)
	defer func() {
		if cap(*bp) == lineChunk {
			linePool.Put(bp)
		}
	}()
	buf := (*bp)[:cap(*bp)]
	var (
		base       int64 // offset of buf[0] in the partition's (decompressed) bytes
		start, end int   // buf[start:end] is read and not yet processed
		run        int   // start of the pending run of kept lines in buf, while writing
		line       int   // number of the current line
		eof        bool
		writing    bool
	)
	write := func(b []byte) error {
		if len(b) == 0 {
			return nil
		}
		if _, err := out.sink.w.Write(b); err != nil {
			return &readError{fmt.Errorf("files: writing %s: %w", out.sink.path, err)}
		}
		return nil
	}
	for {
		nl := bytes.IndexByte(buf[start:end], '\n')
		if nl < 0 && !eof {
			// Hand over the kept run so far, move the partial line to the front, read more.
			if writing {
				if err := write(buf[run:start]); err != nil {
					return err
				}
			}
			if start > 0 {
				copy(buf, buf[start:end])
				base += int64(start)
				end -= start
				start, run = 0, 0
			}
			if end == len(buf) {
				if len(buf) > maxLine {
					return badInput(name, "line %d is longer than %d bytes", line+1, maxLine)
				}
				nb := make([]byte, 2*len(buf))
				copy(nb, buf[:end])
				buf = nb
				*bp = nb
			}
			n, err := r.Read(buf[end:])
			end += n
			if err == io.EOF {
				eof = true
			} else if err != nil {
				return c.lineReadError(name, gz, err)
			}
			continue
		}
		var raw []byte
		if nl >= 0 {
			raw = buf[start : start+nl+1]
		} else if start < end {
			raw = buf[start:end] // the last line has no newline
		} else {
			break
		}
		line++
		key, has, row, perr := jsonLookup(raw, c.path)
		if perr != nil {
			return badInput(name, "line %d: %v", line, perr)
		}
		if md == modeCheck {
			return nil // the first line parsed
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
				if writing {
					if err := write(buf[run:start]); err != nil {
						return err
					}
				} else {
					if err := out.sink.open(); err != nil {
						return err
					}
					if err := c.copyPrefix(name, gz, base+int64(start), out.sink.w, cr); err != nil {
						return err
					}
					writing = true
				}
				run = start + len(raw)
			}
		} else if has && row && len(key) > 0 {
			out.hash(key)
		}
		start += len(raw)
	}
	if writing {
		return write(buf[run:start])
	}
	return nil
}

// lineReadError reports a failure reading a JSON lines partition as processRecords does.
func (c *Connector) lineReadError(name string, gz bool, err error) error {
	if gz && errors.Is(err, io.ErrUnexpectedEOF) {
		return badInput(name, "gzip stream is truncated")
	}
	return badInput(name, "%v", err)
}
