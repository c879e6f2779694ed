// ChatSocket: a WebSocket client for the chat protocol (docs/websocket.md) that
// survives network loss. It reconnects with backoff, resumes every session it
// follows from the last seq it delivered (in the upgrade request), resends
// unacknowledged messages with their original client_msg_id (the server
// deduplicates them), and hands the app each message exactly once, in order.

import { SeqTracker } from './seq';
import type { MessageFrame, ServerFrame } from './types';

export type ConnState = 'connecting' | 'open' | 'reconnecting' | 'stopped';

export interface PendingSend {
  clientMsgId: string;
  sessionId: string;
  text: string;
  acked: boolean;
  failed?: string;
}

interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export interface ChatSocketOptions {
  /** Builds the socket URL (called on every connect: the token may have changed). */
  url: () => string;
  /** Agent sockets name the session in every frame; customer sockets have one session. */
  agent: boolean;
  /** Agents: their own id (sessions assigned to someone else are not followed). */
  self?: string;
  /** Every frame except duplicate or out-of-order messages, which are handled here. */
  onFrame: (f: ServerFrame) => void;
  onState?: (s: ConnState) => void;
  /** A send the server refused for good (e.g. text_too_large). */
  onSendFailed?: (p: PendingSend, code: string, message: string) => void;
  /**
   * The server ended the socket and said not to reconnect (close reason
   * `{"reconnect":false,"reason":…}`, e.g. 1008 when the user's sign-in was revoked):
   * the socket stops instead of retrying.
   */
  onRefused?: (reason: string, code: number) => void;
  /** Fetch messages after afterSeq over REST (when the server says the gap is too large). */
  loadHistory?: (sessionId: string, afterSeq: number) => Promise<{ messages: MessageFrame[]; has_more: boolean }>;
  WebSocket?: { new (url: string): WebSocket };
  timers?: Timers;
  /**
   * Reconnect delays (ms): the first, and the cap while the outage is young (the first
   * `quickAttempts` attempts). After that the cap is `slowCap`. Each delay is jittered
   * to 50-100% so that the clients of a restarted server do not come back in step.
   */
  backoff?: [number, number];
  random?: () => number;
}

let counter = 0;

/** The most sessions resumed in the upgrade request; the rest send resume frames. */
export const maxConnectResumes = 500;

/**
 * The socket URL with the resumes of `from` (session id → last seq) carried in the
 * upgrade request (docs/websocket.md): `last_seq` for a customer's one session,
 * `resume=<session_id>:<seq>` per session for an agent. The server answers them with
 * the greeting, so a reconnect costs no extra round trip.
 */
export function resumeURL(url: string, agent: boolean, from: [string, number][]): string {
  if (from.length === 0) return url;
  const params = agent
    ? from.map(([sid, seq]) => `resume=${encodeURIComponent(`${sid}:${seq}`)}`)
    : [`last_seq=${from[0][1]}`];
  return url + (url.includes('?') ? '&' : '?') + params.join('&');
}

/** Reconnect attempts made at the quick cap before the delay grows to slowCap. */
export const quickAttempts = 15;
export const slowCap = 10_000;

/** A client message id that is unique per page load and readable in logs. */
export function newClientMsgId(prefix = 'c'): string {
  counter++;
  const rnd = Math.random().toString(36).slice(2, 10);
  return `${prefix}-${Date.now().toString(36)}-${counter}-${rnd}`;
}

/**
 * The reason of a close that says not to reconnect (`{"reconnect":false,"reason":…}`),
 * or null for any other close: those are retried.
 */
export function refusal(ev?: { code?: number; reason?: string }): string | null {
  if (!ev?.reason) return null;
  try {
    const r = JSON.parse(ev.reason) as { reconnect?: unknown; reason?: unknown };
    if (r && r.reconnect === false) return typeof r.reason === 'string' ? r.reason : '';
  } catch {
    /* not ours: retry */
  }
  return null;
}

export class ChatSocket {
  readonly seq = new SeqTracker();
  readonly pending = new Map<string, PendingSend>();
  state: ConnState = 'connecting';

  private ws: WebSocket | null = null;
  private readonly opts: ChatSocketOptions;
  private readonly timers: Timers;
  private attempt = 0;
  private retryTimer: unknown = null;
  private resendTimer: unknown = null;
  private stopped = false;
  /** Sessions to resume on every (re)connect. */
  private readonly watched = new Set<string>();
  /** Sessions with a resume in flight: gaps are expected until "resumed". */
  private readonly resuming = new Set<string>();

  constructor(opts: ChatSocketOptions) {
    this.opts = opts;
    this.timers = opts.timers ?? { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (id) => clearTimeout(id as number) };
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer) this.timers.clearTimeout(this.retryTimer);
    if (this.resendTimer) this.timers.clearTimeout(this.resendTimer);
    this.retryTimer = this.resendTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
    }
    this.setState('stopped');
  }

  /** Drop the connection now and reconnect (e.g. the browser says it is back online). */
  reconnectNow(): void {
    if (this.stopped) return;
    if (this.state === 'open') {
      this.dropSocket();
    }
    if (this.retryTimer) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.attempt = 0;
    this.connect();
  }

  /** The connection is known to be dead (e.g. the browser went offline). */
  markOffline(): void {
    if (this.stopped) return;
    this.dropSocket();
    this.scheduleReconnect();
  }

  /** Follow a session: resume it from its last seq now and after every reconnect. */
  watch(sessionId: string): void {
    const isNew = !this.watched.has(sessionId);
    this.watched.add(sessionId);
    if (isNew && this.state === 'open') this.resume(sessionId);
  }

  unwatch(sessionId: string): void {
    this.watched.delete(sessionId);
    this.resuming.delete(sessionId);
  }

  isWatched(sessionId: string): boolean {
    return this.watched.has(sessionId);
  }

  /** Send a message; it is queued while offline and resent until acknowledged. */
  send(sessionId: string, text: string, clientMsgId = newClientMsgId()): PendingSend {
    const p: PendingSend = { clientMsgId, sessionId, text, acked: false };
    this.pending.set(clientMsgId, p);
    this.transmitSend(p);
    return p;
  }

  /** Retry a send the server refused (after the user fixed nothing: same id). */
  retry(clientMsgId: string): void {
    const p = this.pending.get(clientMsgId);
    if (!p) return;
    p.failed = undefined;
    this.transmitSend(p);
  }

  discard(clientMsgId: string): void {
    this.pending.delete(clientMsgId);
  }

  typing(sessionId: string, state: 'start' | 'stop'): void {
    this.sendFrame(this.withSession({ type: 'typing', state }, sessionId));
  }

  read(sessionId: string, seq: number): void {
    if (seq > 0) this.sendFrame(this.withSession({ type: 'read', seq }, sessionId));
  }

  // --- internals ---

  private withSession(f: Record<string, unknown>, sessionId: string): Record<string, unknown> {
    if (this.opts.agent) f.session_id = sessionId;
    return f;
  }

  private sendFrame(f: Record<string, unknown>): boolean {
    const ws = this.ws;
    if (!ws || this.state !== 'open') return false;
    try {
      ws.send(JSON.stringify(f));
      return true;
    } catch {
      return false;
    }
  }

  private transmitSend(p: PendingSend): void {
    this.sendFrame(this.withSession({ type: 'message', client_msg_id: p.clientMsgId, text: p.text }, p.sessionId));
  }

  private resume(sessionId: string): void {
    this.resuming.add(sessionId);
    this.sendFrame(this.withSession({ type: 'resume', last_seq: this.seq.get(sessionId) }, sessionId));
  }

  private setState(s: ConnState): void {
    if (this.state === s) return;
    this.state = s;
    this.opts.onState?.(s);
  }

  private dropSocket(): void {
    const ws = this.ws;
    this.ws = null;
    if (!ws) return;
    ws.onopen = ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close();
    } catch {
      /* ignore */
    }
  }

  private connect(): void {
    if (this.stopped) return;
    this.dropSocket();
    this.setState(this.attempt === 0 && this.state !== 'reconnecting' ? 'connecting' : 'reconnecting');
    // The sessions followed are resumed in the upgrade request (a customer has one).
    const carried = [...this.watched].slice(0, this.opts.agent ? maxConnectResumes : 1);
    let ws: WebSocket;
    try {
      const WS = this.opts.WebSocket ?? WebSocket;
      ws = new WS(resumeURL(this.opts.url(), this.opts.agent, carried.map((sid) => [sid, this.seq.get(sid)])));
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.attempt = 0;
      this.setState('open');
      this.resuming.clear();
      for (const sid of carried) this.resuming.add(sid);
      for (const sid of this.watched) if (!carried.includes(sid)) this.resume(sid);
      for (const p of this.pending.values()) if (!p.acked && !p.failed) this.transmitSend(p);
    };
    ws.onmessage = (ev: MessageEvent) => {
      if (this.ws !== ws) return;
      let f: ServerFrame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.handle(f);
    };
    ws.onclose = (ev?: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const refused = refusal(ev);
      if (refused !== null) {
        this.stop();
        this.opts.onRefused?.(refused, ev?.code ?? 0);
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    this.setState('reconnecting');
    // Quick while the server is likely coming back (a restarted gateway is ready again
    // within a second or two), then gentle for a long outage.
    const [min, max] = this.opts.backoff ?? [100, 1_000];
    const cap = this.attempt < quickAttempts ? max : Math.max(max, slowCap);
    const base = Math.min(cap, min * 2 ** Math.min(this.attempt, 20));
    const jitter = 0.5 + (this.opts.random ?? Math.random)() * 0.5;
    this.attempt++;
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, Math.round(base * jitter));
  }

  /** Handle one server frame (public for tests). */
  handle(f: ServerFrame): void {
    switch (f.type) {
      case 'message': {
        const verdict = this.seq.accept(f.session_id, f.seq);
        if (verdict === 'duplicate') return;
        if (verdict === 'gap') {
          // Missed something (e.g. a live message before our replay): ask again from
          // what we have, once, and drop this frame; the replay brings it back.
          if (!this.resuming.has(f.session_id)) {
            this.watched.add(f.session_id);
            this.resume(f.session_id);
          }
          return;
        }
        if (f.client_msg_id) this.pending.delete(f.client_msg_id);
        this.opts.onFrame(f);
        return;
      }
      case 'ack': {
        const p = this.pending.get(f.client_msg_id);
        if (p) p.acked = true;
        this.opts.onFrame(f);
        return;
      }
      case 'resumed': {
        if (f.history && this.opts.loadHistory) {
          void this.catchUp(f.session_id);
          return;
        }
        this.resuming.delete(f.session_id);
        this.opts.onFrame(f);
        return;
      }
      case 'error': {
        if (f.client_msg_id) {
          const p = this.pending.get(f.client_msg_id);
          if (p) {
            if (f.code === 'unavailable') {
              this.scheduleResend();
            } else {
              p.failed = f.code;
              this.opts.onSendFailed?.(p, f.code, f.message);
            }
          }
        } else if (f.code === 'resync_required' && f.session_id) {
          this.resuming.delete(f.session_id);
          this.resume(f.session_id);
        }
        this.opts.onFrame(f);
        return;
      }
      case 'session': {
        if (this.opts.agent) {
          if (f.status === 'assigned' && (!this.opts.self || f.agent_id === this.opts.self)) {
            // Ours (on connect, or newly assigned): follow it from what we have. A
            // new assignment is also replayed by the server unasked; the copies are
            // dropped by seq.
            this.watch(f.session_id);
          } else {
            this.unwatch(f.session_id);
          }
        }
        this.opts.onFrame(f);
        return;
      }
      default:
        this.opts.onFrame(f);
    }
  }

  private scheduleResend(): void {
    if (this.resendTimer) return;
    this.resendTimer = this.timers.setTimeout(() => {
      this.resendTimer = null;
      for (const p of this.pending.values()) if (!p.acked && !p.failed) this.transmitSend(p);
    }, 1000);
  }

  private async catchUp(sessionId: string): Promise<void> {
    try {
      for (;;) {
        const page = await this.opts.loadHistory!(sessionId, this.seq.get(sessionId));
        for (const m of page.messages) this.handle({ ...m, type: 'message' });
        if (!page.has_more || page.messages.length === 0) break;
      }
    } finally {
      this.resuming.delete(sessionId);
      this.resume(sessionId);
    }
  }
}
