package records_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"erasure/records"
)

func TestProgress_JSONDurationsAreStrings(t *testing.T) {
	p := records.Progress{Records: 10, Elapsed: 2 * time.Second, Rate: 5, ETA: 90 * time.Second}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"elapsed":"2s"`) || !strings.Contains(string(b), `"eta":"1m30s"`) || !strings.Contains(string(b), `"records":10`) {
		t.Fatalf("Progress JSON %s", b)
	}
	var back records.Progress
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Fatalf("round trip %+v %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"records":1,"elapsed":2000000000,"eta":0}`), &back); err != nil || back.Elapsed != 2*time.Second {
		t.Fatalf("old form %+v %v", back, err)
	}
	r := records.ReindexReport{Records: 3, Elapsed: 250 * time.Millisecond}
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"elapsed":"250ms"`) {
		t.Fatalf("ReindexReport JSON %s", b)
	}
}
