// Package reindex streams a record store's records to a search index or any other consumer:
// Run reads from a records.Reader (a store, or client.RecordsReader over the API) and sends
// bounded batches of JSON lines to a records.Sink. The sinks are here: JSONLSink (stdout, a
// file), NATSSink (one message per batch) and HTTPSink (NDJSON POSTs, retried with backoff).
//
// Each source is split into id-range segments (records.Reader.Segments) read Parallel at a
// time; a checkpoint file records each segment's last id sent, so an interrupted reindex
// resumes, and delivery is at least once. The modes and their options are records'
// (records.ReindexOptions).
package reindex
