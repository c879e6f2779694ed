package session

import "sync"

// maxStoredSeqs bounds the sessions a storedSeqs remembers; past it, it starts over
// (each session then takes one batch through the slower path to be remembered again).
const maxStoredSeqs = 100_000

// storedSeqs remembers, per session, the highest seq this process stored for it while
// owning its partition, or fanned out as final on the way to storing it. A batch whose
// seqs continue from there was sequenced from state this process wrote, and verified
// by storing it, so its seqs are final and it can be fanned out before it is stored.
//
// The first batch of a session after a start or a rebalance, and any batch whose
// seqs do not continue (its Redis state was lost, rebuilt from MongoDB or restored
// from an older snapshot, or another member wrote it), is fanned out only after the
// insert: the unique indexes then refuse wrong seqs before anyone sees them.
type storedSeqs struct {
	mu   sync.Mutex
	last map[string]int64
}

// split divides the batch's sessions into those that may be fanned out before the
// insert and those that must wait for it. owner says whether this member still owns
// the batch's partition; if not, every session waits. So does a session with more
// than maxEarly messages in the batch: a reader finds messages not yet stored in the
// session's recent buffer, which keeps only the last maxEarly.
func (t *storedSeqs) split(order []string, bySession map[string][]*pending, owner bool, maxEarly int) (early, late []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sid := range order {
		ps, ok := bySession[sid]
		if !ok {
			continue
		}
		if last, known := t.last[sid]; owner && known && len(ps) <= maxEarly && continues(last, ps) {
			early = append(early, sid)
		} else {
			late = append(late, sid)
		}
	}
	return early, late
}

// continues reports whether ps, in order, gives its new messages the seqs right
// after last and its repeats seqs already given out.
func continues(last int64, ps []*pending) bool {
	next := last + 1
	for _, p := range ps {
		switch {
		case p.dup && p.msg.Seq < next:
		case !p.dup && p.msg.Seq == next:
			next++
		default:
			return false
		}
	}
	return true
}

// record notes what a batch stored: every session with new messages is remembered at
// its highest seq.
func (t *storedSeqs) record(bySession map[string][]*pending) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for sid, ps := range bySession {
		t.note(sid, ps)
	}
}

// fannedOut notes the sessions of a batch fanned out before its insert: their seqs
// are final, so the session's next batch may continue from them while this one is
// still being stored.
func (t *storedSeqs) fannedOut(sids []string, bySession map[string][]*pending) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sid := range sids {
		t.note(sid, bySession[sid])
	}
}

func (t *storedSeqs) note(sid string, ps []*pending) {
	high := int64(0)
	for _, p := range ps {
		if !p.dup {
			high = max(high, p.msg.Seq)
		}
	}
	if high == 0 {
		return
	}
	if t.last == nil || len(t.last) >= maxStoredSeqs {
		t.last = make(map[string]int64)
	}
	t.last[sid] = max(t.last[sid], high)
}

// forget drops the sessions of a batch that failed: its retry starts over.
func (t *storedSeqs) forget(sids []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, sid := range sids {
		delete(t.last, sid)
	}
}

// reset forgets every session.
func (t *storedSeqs) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = nil
}
