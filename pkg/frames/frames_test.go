package frames

import (
	"testing"
	"time"
)

func TestEncodeDecode(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	p, err := Encode(at, Ack{Type: TypeAck, ClientMsgID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	got, body, err := Decode(p)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Equal(at) || string(body) != `{"type":"ack","client_msg_id":"c1"}` {
		t.Fatalf("got %v %s", got, body)
	}
	p, _ = Encode(time.Time{}, Ack{Type: TypeAck})
	if got, _, _ := Decode(p); !got.IsZero() {
		t.Fatalf("zero time round-tripped as %v", got)
	}
	if _, _, err := Decode([]byte{1, 2}); err == nil {
		t.Fatal("short payload accepted")
	}
}
