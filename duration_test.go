package erasure_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure"
)

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		720 * time.Hour: "720h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", time.Second: "1s",
		1500 * time.Millisecond: "1.5s", 250 * time.Millisecond: "250ms", 0: "0s", time.Hour + time.Second: "1h0m1s",
	} {
		if got := erasure.FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", int64(d), got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"720h": 720 * time.Hour, "30d": 720 * time.Hour, "1d12h": 36 * time.Hour, "1.5s": 1500 * time.Millisecond, "0s": 0, "-2s": -2 * time.Second} {
		if got, err := erasure.ParseDuration(s); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, bad := range []string{"", "d", "3", "h", "1d-2h", "1x", "+1s", "99999999d"} {
		if _, err := erasure.ParseDuration(bad); erasure.ErrorCode(err) != erasure.EINVALID {
			t.Errorf("ParseDuration(%q) = %v, want EINVALID", bad, err)
		}
	}
}

// TestPolicy_JSON: the API writes durations as strings and reads them back; a client that
// still sends nanoseconds is understood.
func TestPolicy_JSON(t *testing.T) {
	p := erasure.Policy{Deadline: 720 * time.Hour, MaxAttempts: 12, Backoff: erasure.Backoff{Initial: time.Second, Max: time.Hour},
		Timeout: 30 * time.Second, AckTimeout: 90 * time.Minute, SweepEvery: 24 * time.Hour, SweepMode: erasure.SweepInternal}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"deadline":"720h","max_attempts":12,"backoff":{"initial":"1s","max":"1h"},"timeout":"30s","ack_timeout":"1h30m","sweep_every":"24h","sweep_mode":"internal"}`
	if string(b) != want {
		t.Fatalf("Policy JSON\n got %s\nwant %s", b, want)
	}
	var back erasure.Policy
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	old := `{"deadline":2592000000000000,"max_attempts":12,"backoff":{"initial":1000000000,"max":3600000000000},"timeout":30000000000,"ack_timeout":5400000000000,"sweep_every":86400000000000,"sweep_mode":"internal"}`
	var fromOld erasure.Policy
	if err := json.Unmarshal([]byte(old), &fromOld); err != nil || fromOld != p {
		t.Fatalf("old form: %+v, %v", fromOld, err)
	}
	if b, _ := json.Marshal(erasure.Policy{Deadline: time.Hour}); strings.Contains(string(b), "ack_timeout") || strings.Contains(string(b), "sweep_every") {
		t.Errorf("zero optional durations are written: %s", b)
	}
	if err := json.Unmarshal([]byte(`{"deadline":"soon"}`), &fromOld); err == nil {
		t.Errorf("a bad duration was accepted")
	}
}

func TestSweepProgress_JSON(t *testing.T) {
	p := erasure.SweepProgress{PartitionsDone: 2, PartitionsTotal: 4, RowsScanned: 10, Elapsed: 1500 * time.Millisecond}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"elapsed":"1.5s"`) || !strings.Contains(string(b), `"partitions_done":2`) || strings.Count(string(b), "elapsed") != 1 {
		t.Fatalf("SweepProgress JSON %s", b)
	}
	var back erasure.SweepProgress
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("round trip %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"partitions_done":2,"elapsed":1500000000}`), &back); err != nil || back.Elapsed != 1500*time.Millisecond || back.PartitionsDone != 2 {
		t.Fatalf("old form %+v %v", back, err)
	}
	r := erasure.IndexReport{Partitions: 3, Elapsed: 2 * time.Second}
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"elapsed":"2s"`) {
		t.Fatalf("IndexReport JSON %s", b)
	}
}
