package check

import "fmt"

// Side is one end of a conversation.
type Side int

// The two sides of a conversation.
const (
	Customer Side = iota
	Agent
)

// String returns the side's name, which is also the sender type of its messages.
func (s Side) String() string {
	if s == Agent {
		return "agent"
	}
	return "customer"
}

// Other returns the opposite side.
func (s Side) Other() Side { return 1 - s }

// Sent is a message a side wrote.
type Sent struct {
	ID       string // client_msg_id
	Acked    bool   // the server acknowledged it
	Attempts int    // times written to a socket; more than 1 means resent with the same id
}

// Received is a message frame as a side received it.
type Received struct {
	Seq         int64
	ClientMsgID string
	Sender      string // sender.type: customer, agent, bot or system
	FromHistory bool   // fetched over REST after a resumed frame with history:true
	// Conn numbers the side's socket connections (1 = the first); Resuming says the
	// frame came between a resume request and its resumed frame. Both only serve to
	// describe problems.
	Conn     int
	Resuming bool
}

// how says how a received message arrived, for problem details.
func (m Received) how() string {
	switch {
	case m.FromHistory:
		return "from the REST history"
	case m.Resuming:
		return fmt.Sprintf("on connection %d during a resume", m.Conn)
	default:
		return fmt.Sprintf("on connection %d, live", m.Conn)
	}
}

// Conversation is everything recorded about one session.
type Conversation struct {
	SessionID string
	// Present says which sides took part; an absent side (an agent never assigned)
	// is not checked and messages to it are undeliverable rather than lost.
	Present  [2]bool
	Sent     [2][]Sent
	Received [2][]Received // in the order each side received them
	// History is the session's REST history in the order returned; it is checked
	// only when HistoryChecked is true.
	History        []Received
	HistoryChecked bool
}

// HistoryResult is the verdict of the REST cross-check.
type HistoryResult struct {
	Checked    int `json:"checked"`    // conversations whose history was fetched
	Messages   int `json:"messages"`   // messages in those histories
	Missing    int `json:"missing"`    // acknowledged messages absent from the history
	Duplicated int `json:"duplicated"` // client_msg_ids stored more than once
	Gaps       int `json:"gaps"`       // seqs missing between 1 and the highest stored
	Mismatched int `json:"mismatched"` // a side received another message at a seq than the history holds
}

// Problem is one example of a breach, for the report.
type Problem struct {
	SessionID   string `json:"session_id"`
	Kind        string `json:"kind"`
	Side        string `json:"side,omitempty"`
	Seq         int64  `json:"seq,omitempty"`
	ClientMsgID string `json:"client_msg_id,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

// MaxProblems bounds the examples a Result keeps.
const MaxProblems = 25

// Result is the checker's verdict over a set of conversations.
type Result struct {
	Conversations int `json:"conversations"`
	Sent          int `json:"sent"`      // distinct messages written by either side
	Acked         int `json:"acked"`     // of which the server acknowledged
	Delivered     int `json:"delivered"` // of which the other side received

	Lost       int `json:"lost"`
	Duplicated int `json:"duplicated"`
	Reordered  int `json:"reordered"`
	Gaps       int `json:"gaps"`

	Unacked          int `json:"unacked"`           // never acknowledged and never delivered (not a breach)
	UnackedDelivered int `json:"unacked_delivered"` // never acknowledged, yet stored and delivered
	Resent           int `json:"resent"`            // written more than once with the same client_msg_id
	Undeliverable    int `json:"undeliverable"`     // sent to a side that never took part

	History  HistoryResult `json:"history"`
	Problems []Problem     `json:"problems,omitempty"`
}

// Breaches is the number of guarantee violations found: lost, duplicated,
// reordered, gaps, and every failure of the history cross-check.
func (r *Result) Breaches() int {
	h := r.History
	return r.Lost + r.Duplicated + r.Reordered + r.Gaps + h.Missing + h.Duplicated + h.Gaps + h.Mismatched
}

// Check checks every conversation.
func Check(convs ...Conversation) Result {
	var r Result
	for _, c := range convs {
		r.Add(c)
	}
	return r
}

func (r *Result) problem(p Problem) {
	if len(r.Problems) < MaxProblems {
		r.Problems = append(r.Problems, p)
	}
}

// key identifies a message within a session: its sender type and client_msg_id.
type key struct {
	sender string
	id     string
}

// Add checks one conversation and adds its counts to r.
func (r *Result) Add(c Conversation) {
	r.Conversations++
	var maxSeq int64
	// What each side received: message key → seq received first.
	got := [2]map[key]int64{}
	// Every seq each message was seen under, across both sides' sockets.
	seqsOf := map[key]map[int64]bool{}
	seen := [2]map[int64]key{}
	for side := Customer; side <= Agent; side++ {
		if !c.Present[side] {
			continue
		}
		got[side] = make(map[key]int64, len(c.Received[side]))
		seen[side] = make(map[int64]key, len(c.Received[side]))
		var high int64
		for _, m := range c.Received[side] {
			k := key{m.Sender, m.ClientMsgID}
			if m.Seq > maxSeq {
				maxSeq = m.Seq
			}
			if prev, dup := seen[side][m.Seq]; dup {
				r.Duplicated++
				detail := "the same seq was received again"
				if prev != k {
					detail = fmt.Sprintf("seq received again carrying another message (first %s/%s)", prev.sender, prev.id)
				}
				r.problem(Problem{SessionID: c.SessionID, Kind: "duplicated", Side: side.String(), Seq: m.Seq, ClientMsgID: m.ClientMsgID, Detail: detail})
				continue
			}
			seen[side][m.Seq] = k
			if m.Seq < high {
				r.Reordered++
				r.problem(Problem{SessionID: c.SessionID, Kind: "reordered", Side: side.String(), Seq: m.Seq, ClientMsgID: m.ClientMsgID,
					Detail: fmt.Sprintf("received after seq %d", high)})
			} else {
				high = m.Seq
			}
			if _, ok := got[side][k]; !ok {
				got[side][k] = m.Seq
			}
			if seqsOf[k] == nil {
				seqsOf[k] = map[int64]bool{}
			}
			seqsOf[k][m.Seq] = true
		}
	}
	// A client_msg_id stored under two seqs is a second message: idempotency failed.
	for k, seqs := range seqsOf {
		if len(seqs) > 1 {
			r.Duplicated += len(seqs) - 1
			r.problem(Problem{SessionID: c.SessionID, Kind: "duplicated", Side: k.sender, ClientMsgID: k.id,
				Detail: fmt.Sprintf("one client_msg_id stored under %d seqs", len(seqs))})
		}
	}

	var hist map[int64]key
	histKeys := map[key]bool{}
	if c.HistoryChecked {
		hist = r.checkHistory(c, histKeys)
		for seq := range hist {
			if seq > maxSeq {
				maxSeq = seq
			}
		}
	}

	// Gaps: every side must have received every seq of the conversation.
	for side := Customer; side <= Agent; side++ {
		if !c.Present[side] {
			continue
		}
		missing := 0
		var first, firstEnd int64
		for seq := int64(1); seq <= maxSeq; seq++ {
			if _, ok := seen[side][seq]; !ok {
				if missing == 0 {
					first = seq
				}
				if firstEnd == seq-1 || missing == 0 {
					firstEnd = seq
				}
				missing++
			}
		}
		if missing > 0 {
			r.Gaps += missing
			r.problem(Problem{SessionID: c.SessionID, Kind: "gap", Side: side.String(), Seq: first,
				Detail: gapDetail(c.Received[side], first, firstEnd, missing, maxSeq)})
		}
		if hist != nil {
			for seq, k := range seen[side] {
				if hk, ok := hist[seq]; ok && hk != k {
					r.History.Mismatched++
					r.problem(Problem{SessionID: c.SessionID, Kind: "history_mismatch", Side: side.String(), Seq: seq, ClientMsgID: k.id,
						Detail: fmt.Sprintf("history holds %s/%s at this seq", hk.sender, hk.id)})
				}
			}
		}
	}

	// Every message written: acknowledged ones must reach the other side.
	for side := Customer; side <= Agent; side++ {
		other := side.Other()
		for _, s := range c.Sent[side] {
			k := key{side.String(), s.ID}
			r.Sent++
			if s.Attempts > 1 {
				r.Resent++
			}
			_, delivered := got[other][k]
			if delivered {
				r.Delivered++
			}
			stored := delivered || seqsOf[k] != nil || histKeys[k]
			switch {
			case !s.Acked && stored:
				r.UnackedDelivered++
			case !s.Acked:
				r.Unacked++
			case !c.Present[other]:
				r.Acked++
				r.Undeliverable++
			default:
				r.Acked++
				if !delivered {
					r.Lost++
					r.problem(Problem{SessionID: c.SessionID, Kind: "lost", Side: side.String(), ClientMsgID: s.ID,
						Detail: "acknowledged but never received by the " + other.String()})
				}
			}
			if s.Acked && c.HistoryChecked && !histKeys[k] {
				r.History.Missing++
				r.problem(Problem{SessionID: c.SessionID, Kind: "history_missing", Side: side.String(), ClientMsgID: s.ID,
					Detail: "acknowledged but absent from the REST history"})
			}
		}
	}
}

// checkHistory checks the history on its own and returns it by seq.
func (r *Result) checkHistory(c Conversation, keys map[key]bool) map[int64]key {
	r.History.Checked++
	r.History.Messages += len(c.History)
	bySeq := make(map[int64]key, len(c.History))
	var high int64
	for _, m := range c.History {
		k := key{m.Sender, m.ClientMsgID}
		if keys[k] {
			r.History.Duplicated++
			r.problem(Problem{SessionID: c.SessionID, Kind: "history_duplicated", Side: m.Sender, Seq: m.Seq, ClientMsgID: m.ClientMsgID,
				Detail: "client_msg_id stored more than once"})
		}
		keys[k] = true
		if _, dup := bySeq[m.Seq]; dup {
			r.History.Duplicated++
			r.problem(Problem{SessionID: c.SessionID, Kind: "history_duplicated", Seq: m.Seq, Detail: "seq listed more than once"})
			continue
		}
		bySeq[m.Seq] = k
		if m.Seq > high {
			high = m.Seq
		}
	}
	if gaps := int(high) - len(bySeq); gaps > 0 {
		r.History.Gaps += gaps
		r.problem(Problem{SessionID: c.SessionID, Kind: "history_gap", Detail: fmt.Sprintf("%d seqs missing between 1 and %d", gaps, high)})
	}
	return bySeq
}

// gapDetail describes a gap: the first missing range, and how the messages on each
// side of it arrived.
func gapDetail(recv []Received, first, last int64, missing int, maxSeq int64) string {
	d := fmt.Sprintf("%d of seqs 1..%d never received; first missing %d", missing, maxSeq, first)
	if last > first {
		d = fmt.Sprintf("%d of seqs 1..%d never received; first missing %d-%d", missing, maxSeq, first, last)
	}
	for _, m := range recv {
		if m.Seq == first-1 {
			d += fmt.Sprintf("; seq %d came %s", m.Seq, m.how())
			break
		}
	}
	for _, m := range recv {
		if m.Seq == last+1 {
			d += fmt.Sprintf("; seq %d came %s", m.Seq, m.how())
			break
		}
	}
	return d
}
