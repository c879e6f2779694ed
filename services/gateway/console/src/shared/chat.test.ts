import { beforeEach, describe, expect, it } from 'vitest';
import { ChatSocket, maxConnectResumes, quickAttempts, resumeURL, slowCap } from './chat';
import type { MessageFrame, ServerFrame } from './types';

// A fake WebSocket the test drives by hand, and fake timers.
class FakeWS {
  static all: FakeWS[] = [];
  url: string;
  sent: Record<string, unknown>[] = [];
  readyState = 0;
  onopen: (() => void) | null = null;
  onclose: ((e?: { code: number; reason: string }) => void) | null = null;
  onmessage: ((e: { data: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(url: string) {
    this.url = url;
    FakeWS.all.push(this);
  }
  send(s: string) {
    this.sent.push(JSON.parse(s));
  }
  close() {
    this.readyState = 3;
  }
  // test helpers
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  push(f: ServerFrame) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
}

class FakeTimers {
  queue: { at: number; fn: () => void; id: number }[] = [];
  now = 0;
  n = 0;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.n;
    this.queue.push({ at: this.now + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.queue = this.queue.filter((t) => t.id !== id);
  };
  advance(ms: number) {
    this.now += ms;
    for (;;) {
      const due = this.queue.filter((t) => t.at <= this.now).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.queue = this.queue.filter((t) => t !== due);
      due.fn();
    }
  }
}

const msg = (seq: number, extra: Partial<MessageFrame> = {}): MessageFrame => ({
  type: 'message',
  session_id: 's1',
  seq,
  client_msg_id: `srv-${seq}`,
  sender: { type: 'agent', id: 'a1' },
  text: `m${seq}`,
  created_at: '2026-11-21T10:00:00Z',
  ...extra,
});

function setup(agent = false) {
  FakeWS.all = [];
  const timers = new FakeTimers();
  const got: ServerFrame[] = [];
  const states: string[] = [];
  const refused: string[] = [];
  const chat = new ChatSocket({
    onRefused: (reason, code) => refused.push(`${code} ${reason}`),
    agent,
    self: agent ? 'me' : undefined,
    url: () => 'ws://test/ws?access_token=t',
    onFrame: (f) => got.push(f),
    onState: (s) => states.push(s),
    WebSocket: FakeWS as unknown as { new (url: string): WebSocket },
    timers,
    backoff: [100, 1000],
    random: () => 1,
  });
  const ws = () => FakeWS.all[FakeWS.all.length - 1];
  const seqs = () => got.filter((f): f is MessageFrame => f.type === 'message').map((f) => f.seq);
  return { chat, timers, got, states, refused, ws, seqs };
}

/** Drops the connection n times and returns how long each reconnect waited (50 ms steps). */
function reconnectDelays(h: ReturnType<typeof setup>, n: number): number[] {
  const delays: number[] = [];
  for (let i = 0; i < n; i++) {
    const before = FakeWS.all.length;
    h.ws().drop();
    let waited = 0;
    while (FakeWS.all.length === before) {
      h.timers.advance(50);
      waited += 50;
    }
    delays.push(waited);
  }
  return delays;
}

describe('ChatSocket', () => {
  let h: ReturnType<typeof setup>;
  beforeEach(() => {
    h = setup();
  });

  it('resumes the watched session from 0 on first connect, in the upgrade request', () => {
    h.chat.watch('s1');
    h.chat.start();
    expect(h.ws().url).toBe('ws://test/ws?access_token=t&last_seq=0');
    h.ws().open();
    expect(h.ws().sent).toEqual([]);
  });

  it('delivers each message once, in order, across a reconnect with replay', () => {
    h.chat.watch('s1');
    h.chat.start();
    h.ws().open();
    for (const s of [1, 2, 3]) h.ws().push(msg(s));
    h.ws().push({ type: 'resumed', session_id: 's1', last_seq: 3 });
    h.ws().drop();
    expect(h.states.at(-1)).toBe('reconnecting');
    h.timers.advance(100);
    expect(FakeWS.all).toHaveLength(2);
    // Resumes from what it has, not from 0.
    expect(h.ws().url).toBe('ws://test/ws?access_token=t&last_seq=3');
    h.ws().open();
    expect(h.ws().sent).toEqual([]);
    // The server replays an overlap (as after a crash) and continues live.
    for (const s of [2, 3, 4, 5]) h.ws().push(msg(s));
    h.ws().push(msg(5));
    expect(h.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('asks to resume once on a gap and drops out-of-order frames until the replay', () => {
    h.chat.watch('s1');
    h.chat.start();
    h.ws().open();
    h.ws().push({ type: 'resumed', session_id: 's1', last_seq: 0 });
    h.ws().push(msg(1));
    h.ws().sent.length = 0;
    h.ws().push(msg(3)); // 2 is missing
    h.ws().push(msg(4));
    expect(h.ws().sent).toEqual([{ type: 'resume', last_seq: 1 }]); // once, not per frame
    for (const s of [2, 3, 4]) h.ws().push(msg(s));
    h.ws().push({ type: 'resumed', session_id: 's1', last_seq: 4 });
    expect(h.seqs()).toEqual([1, 2, 3, 4]);
  });

  it('queues sends while offline and resends unacknowledged ones with the same id', () => {
    h.chat.watch('s1');
    h.chat.start();
    const p = h.chat.send('s1', 'hello'); // not connected yet
    h.ws().open();
    const sentMsgs = () => h.ws().sent.filter((f) => f.type === 'message');
    expect(sentMsgs()).toEqual([{ type: 'message', client_msg_id: p.clientMsgId, text: 'hello' }]);
    // Connection drops before the ack: the same id is sent again after reconnect.
    h.ws().drop();
    h.timers.advance(100);
    h.ws().open();
    expect(sentMsgs()).toEqual([{ type: 'message', client_msg_id: p.clientMsgId, text: 'hello' }]);
    h.ws().push({ type: 'ack', client_msg_id: p.clientMsgId });
    // Acked: not resent on the next reconnect; the echo comes with the resume.
    h.ws().drop();
    h.timers.advance(200);
    h.ws().open();
    expect(sentMsgs()).toEqual([]);
    h.ws().push(msg(1, { client_msg_id: p.clientMsgId, sender: { type: 'customer', id: 's1' } }));
    expect(h.chat.pending.size).toBe(0);
  });

  it('retries a send the server could not take (unavailable) and gives up on bad input', () => {
    const failed: string[] = [];
    FakeWS.all = [];
    const timers = new FakeTimers();
    const chat = new ChatSocket({ agent: false, url: () => 'ws://x', onFrame: () => {}, onSendFailed: (_, code) => failed.push(code), WebSocket: FakeWS as never, timers });
    chat.start();
    const ws = FakeWS.all[0];
    ws.open();
    const a = chat.send('s1', 'a');
    const b = chat.send('s1', 'x'.repeat(10));
    ws.sent.length = 0;
    ws.push({ type: 'error', code: 'unavailable', message: 'retry', client_msg_id: a.clientMsgId });
    ws.push({ type: 'error', code: 'text_too_large', message: 'split it', client_msg_id: b.clientMsgId });
    expect(failed).toEqual(['text_too_large']);
    timers.advance(1000);
    expect(ws.sent).toEqual([{ type: 'message', client_msg_id: a.clientMsgId, text: 'a' }]);
  });

  it('stops when the server says not to reconnect, and retries any other close', () => {
    h.chat.watch('s1');
    h.chat.start();
    h.ws().open();
    h.ws().drop(1012, '{"reconnect":true,"reason":"server is restarting, resume"}');
    h.timers.advance(1000);
    expect(FakeWS.all.length).toBe(2);
    h.ws().open();
    h.ws().drop(1011, 'not json');
    h.timers.advance(1000);
    expect(FakeWS.all.length).toBe(3);
    h.ws().open();
    h.ws().drop(1008, '{"reconnect":false,"reason":"signed out: credentials revoked or changed"}');
    h.timers.advance(60_000);
    expect(FakeWS.all.length).toBe(3);
    expect(h.chat.state).toBe('stopped');
    expect(h.refused).toEqual(['1008 signed out: credentials revoked or changed']);
  });

  it('backs off exponentially up to the cap', () => {
    h.chat.start();
    const delays = reconnectDelays(h, 6);
    expect(delays).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('keeps retrying quickly while an outage is young, then slows down', () => {
    h.chat.start();
    const delays = reconnectDelays(h, quickAttempts + 2);
    expect(delays.slice(4, quickAttempts)).toEqual(Array(quickAttempts - 4).fill(1000));
    expect(delays.slice(quickAttempts)).toEqual([slowCap, slowCap]);
  });

  it('fetches history over REST when the gap is too large to replay', async () => {
    FakeWS.all = [];
    const got: number[] = [];
    const pages = [
      { messages: [msg(1), msg(2)], has_more: true },
      { messages: [msg(3)], has_more: false },
    ];
    const asked: number[] = [];
    const chat = new ChatSocket({
      agent: false,
      url: () => 'ws://x',
      onFrame: (f) => f.type === 'message' && got.push(f.seq),
      loadHistory: async (_sid, after) => {
        asked.push(after);
        return pages.shift()!;
      },
      WebSocket: FakeWS as never,
      timers: new FakeTimers(),
    });
    chat.watch('s1');
    chat.start();
    const ws = FakeWS.all[0];
    ws.open();
    ws.push({ type: 'resumed', session_id: 's1', last_seq: 0, history: true });
    await new Promise((r) => setTimeout(r, 0));
    expect(asked).toEqual([0, 2]);
    expect(got).toEqual([1, 2, 3]);
    expect(ws.sent.at(-1)).toEqual({ type: 'resume', last_seq: 3 });
  });

  it('agents follow sessions assigned to them and name the session in frames', () => {
    const a = setup(true);
    a.chat.start();
    a.ws().open();
    a.ws().push({ type: 'session', session_id: 's9', status: 'assigned', agent_id: 'me' });
    a.ws().push({ type: 'session', session_id: 's8', status: 'assigned', agent_id: 'someone-else' });
    expect(a.ws().sent).toEqual([{ type: 'resume', last_seq: 0, session_id: 's9' }]);
    a.chat.typing('s9', 'start');
    a.chat.read('s9', 4);
    expect(a.ws().sent.slice(1)).toEqual([
      { type: 'typing', state: 'start', session_id: 's9' },
      { type: 'read', seq: 4, session_id: 's9' },
    ]);
    // Followed sessions are resumed in the upgrade request after a reconnect.
    a.ws().push({ type: 'resumed', session_id: 's9', last_seq: 0 });
    a.ws().push(msg(1, { session_id: 's9' }));
    a.ws().push({ type: 'session', session_id: 's7', status: 'assigned', agent_id: 'me' });
    a.ws().drop();
    a.timers.advance(100);
    expect(a.ws().url).toBe('ws://test/ws?access_token=t&resume=s9%3A1&resume=s7%3A0');
    a.ws().open();
    expect(a.ws().sent).toEqual([]);
    // Gaps are expected until each session's resumed frame: no second resume.
    a.ws().push(msg(3, { session_id: 's9' }));
    expect(a.ws().sent).toEqual([]);
    // Closed: no longer resumed after a reconnect.
    a.ws().push({ type: 'session', session_id: 's9', status: 'closed', agent_id: 'me' });
    a.ws().push({ type: 'session', session_id: 's7', status: 'closed', agent_id: 'me' });
    a.ws().drop();
    a.timers.advance(100);
    expect(a.ws().url).toBe('ws://test/ws?access_token=t');
    a.ws().open();
    expect(a.ws().sent).toEqual([]);
  });

  it('resumes what does not fit in the upgrade request with frames', () => {
    const a = setup(true);
    const sids = Array.from({ length: maxConnectResumes + 1 }, (_, i) => `s${i}`);
    for (const sid of sids) a.chat.watch(sid);
    a.chat.start();
    expect(new URL(a.ws().url).searchParams.getAll('resume')).toEqual(sids.slice(0, maxConnectResumes).map((sid) => `${sid}:0`));
    a.ws().open();
    expect(a.ws().sent).toEqual([{ type: 'resume', last_seq: 0, session_id: sids[maxConnectResumes] }]);
  });

  it('builds the upgrade URL with or without a query', () => {
    expect(resumeURL('ws://h/api/v1/customer/ws', false, [['s1', 7]])).toBe('ws://h/api/v1/customer/ws?last_seq=7');
    expect(resumeURL('ws://h/ws?access_token=t', false, [])).toBe('ws://h/ws?access_token=t');
    expect(resumeURL('ws://h/ws', true, [['a b', 2]])).toBe('ws://h/ws?resume=a%20b%3A2');
  });
});
