package check

import (
	"reflect"
	"testing"
)

// conv builds a conversation with both sides present.
func conv(opts ...func(*Conversation)) Conversation {
	c := Conversation{SessionID: "s1", Present: [2]bool{true, true}}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func sent(side Side, id string, acked bool, attempts int) func(*Conversation) {
	return func(c *Conversation) {
		c.Sent[side] = append(c.Sent[side], Sent{ID: id, Acked: acked, Attempts: attempts})
	}
}

// recv appends messages, given as "seq sender/id" triples, to side's received list.
func recv(side Side, msgs ...Received) func(*Conversation) {
	return func(c *Conversation) { c.Received[side] = append(c.Received[side], msgs...) }
}

func history(msgs ...Received) func(*Conversation) {
	return func(c *Conversation) { c.History, c.HistoryChecked = append(c.History, msgs...), true }
}

func cm(seq int64, id string) Received {
	return Received{Seq: seq, ClientMsgID: id, Sender: "customer"}
}
func am(seq int64, id string) Received { return Received{Seq: seq, ClientMsgID: id, Sender: "agent"} }

// both delivers the messages to both sides.
func both(msgs ...Received) func(*Conversation) {
	return func(c *Conversation) {
		recv(Customer, msgs...)(c)
		recv(Agent, msgs...)(c)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		conv Conversation
		want Result // only the counting fields are compared
	}{
		{
			// A clean exchange: a question, its answer, both seen by both sides.
			name: "clean",
			conv: conv(sent(Customer, "c1", true, 1), sent(Agent, "a1", true, 1), both(cm(1, "c1"), am(2, "a1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2},
		},
		{
			// The agent never got an acknowledged customer message.
			name: "lost",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1),
				recv(Customer, cm(1, "c1"), cm(2, "c2")), recv(Agent, cm(1, "c1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 1, Lost: 1, Gaps: 1},
		},
		{
			// The same seq delivered twice to the agent (a replay overlapping live delivery).
			name: "duplicated seq",
			conv: conv(sent(Customer, "c1", true, 1), recv(Customer, cm(1, "c1")), recv(Agent, cm(1, "c1"), cm(1, "c1"))),
			want: Result{Sent: 1, Acked: 1, Delivered: 1, Duplicated: 1},
		},
		{
			// One client_msg_id stored twice (idempotency broken): seqs 1 and 2 carry c1.
			name: "stored twice",
			conv: conv(sent(Customer, "c1", true, 2), both(cm(1, "c1"), cm(2, "c1"))),
			want: Result{Sent: 1, Acked: 1, Delivered: 1, Duplicated: 1, Resent: 1},
		},
		{
			// The agent got seq 2 before seq 1.
			name: "reordered",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1),
				recv(Customer, cm(1, "c1"), cm(2, "c2")), recv(Agent, cm(2, "c2"), cm(1, "c1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2, Reordered: 1},
		},
		{
			// Live delivery of seq 3 raced a resume replaying 2 and 3: a reorder and a duplicate.
			name: "resume race",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1), sent(Customer, "c3", true, 1),
				recv(Customer, cm(1, "c1"), cm(2, "c2"), cm(3, "c3")),
				recv(Agent, cm(1, "c1"), cm(3, "c3"), cm(2, "c2"), cm(3, "c3"))),
			want: Result{Sent: 3, Acked: 3, Delivered: 3, Reordered: 1, Duplicated: 1},
		},
		{
			// The customer missed seq 2 (its own echo), the agent got everything.
			name: "gap in own echo",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1), sent(Customer, "c3", true, 1),
				recv(Customer, cm(1, "c1"), cm(3, "c3")), recv(Agent, cm(1, "c1"), cm(2, "c2"), cm(3, "c3"))),
			want: Result{Sent: 3, Acked: 3, Delivered: 3, Gaps: 1},
		},
		{
			// Sent while the socket died: never acknowledged, never stored. Not lost.
			name: "unacked not delivered",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", false, 1), both(cm(1, "c1"))),
			want: Result{Sent: 2, Acked: 1, Delivered: 1, Unacked: 1},
		},
		{
			// The ack was lost with the socket but the message was stored and delivered.
			name: "unacked but delivered",
			conv: conv(sent(Customer, "c1", false, 1), both(cm(1, "c1"))),
			want: Result{Sent: 1, Delivered: 1, UnackedDelivered: 1},
		},
		{
			// Resent with the same id after a reconnect, stored once: correct.
			name: "resend with same id",
			conv: conv(sent(Customer, "c1", true, 3), sent(Agent, "a1", true, 1), both(cm(1, "c1"), am(2, "a1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2, Resent: 1},
		},
		{
			// No agent was ever assigned: customer messages are undeliverable, not lost.
			name: "no agent",
			conv: Conversation{SessionID: "s1", Present: [2]bool{true, false},
				Sent: [2][]Sent{{{ID: "c1", Acked: true, Attempts: 1}}}, Received: [2][]Received{{cm(1, "c1")}}},
			want: Result{Sent: 1, Acked: 1, Undeliverable: 1},
		},
		{
			// Messages of other senders (bot, system) take seqs too and must arrive.
			name: "system message counted in gaps",
			conv: conv(sent(Customer, "c1", true, 1), recv(Customer, cm(1, "c1"), Received{Seq: 2, ClientMsgID: "sys-1", Sender: "system"}),
				recv(Agent, cm(1, "c1"))),
			want: Result{Sent: 1, Acked: 1, Delivered: 1, Gaps: 1},
		},
		{
			// Messages fetched over REST after resumed{history:true} count as received.
			name: "received from history",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1), recv(Customer, cm(1, "c1"), cm(2, "c2")),
				recv(Agent, cm(1, "c1"), Received{Seq: 2, ClientMsgID: "c2", Sender: "customer", FromHistory: true})),
			want: Result{Sent: 2, Acked: 2, Delivered: 2},
		},
		{
			// History agrees with both sides.
			name: "history clean",
			conv: conv(sent(Customer, "c1", true, 1), sent(Agent, "a1", true, 1), both(cm(1, "c1"), am(2, "a1")), history(cm(1, "c1"), am(2, "a1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2, History: HistoryResult{Checked: 1, Messages: 2}},
		},
		{
			// The history lacks an acknowledged message that both sides received.
			name: "history missing",
			conv: conv(sent(Customer, "c1", true, 1), sent(Agent, "a1", true, 1), both(cm(1, "c1"), am(2, "a1")), history(cm(1, "c1"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2, History: HistoryResult{Checked: 1, Messages: 1, Missing: 1}},
		},
		{
			// The history stores a client_msg_id twice and skips seq 3.
			name: "history duplicated and gap",
			conv: conv(sent(Customer, "c1", true, 2), both(cm(1, "c1")), history(cm(1, "c1"), cm(2, "c1"), cm(4, "c9"))),
			want: Result{Sent: 1, Acked: 1, Delivered: 1, Gaps: 6,
				History: HistoryResult{Checked: 1, Messages: 3, Duplicated: 1, Gaps: 1}, Resent: 1},
		},
		{
			// A side got a different message at a seq than the history holds.
			name: "history mismatch",
			conv: conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1),
				recv(Customer, cm(1, "c1"), cm(2, "c2")), recv(Agent, cm(1, "c2"), cm(2, "c1")), history(cm(1, "c1"), cm(2, "c2"))),
			want: Result{Sent: 2, Acked: 2, Delivered: 2, Duplicated: 2, History: HistoryResult{Checked: 1, Messages: 2, Mismatched: 2}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.conv)
			got.Problems = nil
			tt.want.Conversations = 1
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Check() =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestBreachesAndProblems(t *testing.T) {
	r := Check(
		conv(sent(Customer, "c1", true, 1), recv(Customer, cm(1, "c1"))),                                   // lost + gap at agent
		conv(sent(Customer, "c1", true, 1), both(cm(1, "c1")), recv(Agent, cm(1, "c1"))),                   // duplicated
		conv(sent(Customer, "c1", true, 1), sent(Customer, "c2", true, 1), both(cm(2, "c2"), cm(1, "c1"))), // reordered twice
	)
	if r.Conversations != 3 || r.Lost != 1 || r.Duplicated != 1 || r.Reordered != 2 || r.Gaps != 1 {
		t.Fatalf("result = %+v", r)
	}
	if r.Breaches() != 5 {
		t.Fatalf("Breaches() = %d, want 5", r.Breaches())
	}
	kinds := map[string]int{}
	for _, p := range r.Problems {
		kinds[p.Kind]++
	}
	if kinds["lost"] != 1 || kinds["duplicated"] != 1 || kinds["reordered"] != 2 || kinds["gap"] != 1 {
		t.Fatalf("problems = %+v", r.Problems)
	}
	var many Result
	for range MaxProblems + 10 {
		many.Add(conv(sent(Customer, "c1", true, 1)))
	}
	if len(many.Problems) != MaxProblems || many.Lost != MaxProblems+10 {
		t.Fatalf("problems kept = %d, lost = %d", len(many.Problems), many.Lost)
	}
}

func TestGapDetail(t *testing.T) {
	c := conv(sent(Customer, "c1", true, 1),
		recv(Customer, Received{Seq: 1, ClientMsgID: "c1", Sender: "customer", Conn: 1},
			Received{Seq: 4, ClientMsgID: "a3", Sender: "agent", Conn: 2, Resuming: true},
			Received{Seq: 5, ClientMsgID: "a4", Sender: "agent", Conn: 2}),
		recv(Agent, cm(1, "c1")))
	r := Check(c)
	var detail string
	for _, p := range r.Problems {
		if p.Kind == "gap" && p.Side == "customer" {
			detail = p.Detail
		}
	}
	want := "2 of seqs 1..5 never received; first missing 2-3; seq 1 came on connection 1, live; seq 4 came on connection 2 during a resume"
	if detail != want {
		t.Fatalf("gap detail\n  %s\nwant\n  %s", detail, want)
	}
}
