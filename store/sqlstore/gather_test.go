package sqlstore

import (
	"testing"
	"time"
)

// gatherIn runs gather in a goroutine and fails the test if it has not returned within a
// minute (it would be waiting for calls that never come).
func gatherIn(t *testing.T, g *gatherer, ch chan int, first, limit int) ([]int, bool) {
	t.Helper()
	type out struct {
		b      []int
		closed bool
	}
	done := make(chan out, 1)
	go func() {
		b, closed := gather(g, ch, first, limit)
		done <- out{b, closed}
	}()
	select {
	case o := <-done:
		return o.b, o.closed
	case <-time.After(time.Minute):
		t.Fatal("gather still waiting after a minute")
		return nil, false
	}
}

func TestGather(t *testing.T) {
	long := func() *gatherer { return &gatherer{gap: time.Hour, most: time.Hour} }
	t.Run("ALoneCallerDoesNotWait", func(t *testing.T) {
		g := long()
		for range 3 {
			if b, _ := gatherIn(t, g, make(chan int), 1, 256); len(b) != 1 {
				t.Fatalf("batch %v", b)
			}
		}
	})
	t.Run("TakesWhatIsQueuedUpToTheLimit", func(t *testing.T) {
		ch := make(chan int, 10)
		for i := 2; i <= 10; i++ {
			ch <- i
		}
		b, _ := gatherIn(t, long(), ch, 1, 4)
		if len(b) != 4 || b[0] != 1 || b[3] != 4 || len(ch) != 6 {
			t.Fatalf("batch %v, %d left", b, len(ch))
		}
	})
	t.Run("WaitsForStragglersUpToTheRecentSize", func(t *testing.T) {
		// The last batches were 3 and 5: the batch waits until it has five, and so does the
		// next one.
		g := long()
		g.last = [2]int{3, 5}
		ch, next := make(chan int), make(chan struct{})
		go func() {
			for i := 2; i <= 9; i++ {
				if i == 6 {
					<-next
				}
				ch <- i
			}
		}()
		b, _ := gatherIn(t, g, ch, 1, 256)
		if len(b) != 5 {
			t.Fatalf("batch %v, want 5 (the larger of the last two)", b)
		}
		close(next)
		b, _ = gatherIn(t, g, ch, 0, 256)
		if len(b) != 5 || b[4] != 9 {
			t.Fatalf("batch %v, want 0 and 6..9", b)
		}
	})
	t.Run("GivesUpAfterTheGap", func(t *testing.T) {
		g := &gatherer{last: [2]int{8, 8}, gap: time.Millisecond, most: time.Millisecond}
		if b, _ := gatherIn(t, g, make(chan int), 1, 256); len(b) != 1 {
			t.Fatalf("batch %v", b)
		}
		if g.last != [2]int{8, 1} {
			t.Fatalf("remembered %v", g.last)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		g := long()
		g.last = [2]int{4, 4}
		ch := make(chan int, 1)
		ch <- 2
		close(ch)
		b, closed := gatherIn(t, g, ch, 1, 256)
		if len(b) != 2 || !closed {
			t.Fatalf("batch %v closed %v", b, closed)
		}
	})
}

func TestDrain(t *testing.T) {
	ch := make(chan int, 5)
	for i := range 5 {
		ch <- i
	}
	if got := drain(ch, 3); len(got) != 3 || got[2] != 2 {
		t.Fatalf("drain 3 of 5: %v", got)
	}
	close(ch)
	if got := drain(ch, 10); len(got) != 2 || got[1] != 4 {
		t.Fatalf("drain the rest of a closed channel: %v", got)
	}
	if got := drain(make(chan int), 10); len(got) != 0 {
		t.Fatalf("drain of an empty channel: %v", got)
	}
}
