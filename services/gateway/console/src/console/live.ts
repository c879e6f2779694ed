// The agent's live state: their conversations, messages, typing and read state, kept
// current over the agent socket (ChatSocket handles reconnect, resume and dedup).

import { socketURL } from '../shared/api';
import { ChatSocket, type ConnState } from '../shared/chat';
import { mergeBySeq } from '../shared/seq';
import type { MessageFrame, ServerFrame, Session, SessionFrame } from '../shared/types';
import { api, signedOut, Store } from './core';

export interface LocalMessage {
  clientMsgId: string;
  text: string;
  failed?: string;
  at: number;
}

export interface LiveState {
  conn: ConnState;
  sessions: Map<string, Session>;
  messages: Map<string, MessageFrame[]>;
  pending: Map<string, LocalMessage[]>;
  typing: Map<string, number>; // session → typing-until (ms)
  customerRead: Map<string, number>; // session → highest seq the customer has read
  unread: Map<string, number>;
  fresh: Set<string>; // newly assigned, not opened yet
  version: number;
}

function emptyState(): LiveState {
  return { conn: 'connecting', sessions: new Map(), messages: new Map(), pending: new Map(), typing: new Map(), customerRead: new Map(), unread: new Map(), fresh: new Set(), version: 0 };
}

async function allMessages(sessionId: string, after = 0): Promise<MessageFrame[]> {
  const out: MessageFrame[] = [];
  for (let i = 0; i < 50; i++) {
    const page = await api.get<{ messages: MessageFrame[]; has_more: boolean }>(`/api/v1/sessions/${sessionId}/messages`, { after_seq: after, limit: 500 });
    out.push(...page.messages);
    if (!page.has_more || page.messages.length === 0) break;
    after = page.messages[page.messages.length - 1].seq;
  }
  return out;
}

export class Live {
  readonly store = new Store<LiveState>(emptyState());
  private chat: ChatSocket | null = null;
  private selfId = '';
  private selected: string | null = null;
  private onNewConversation: ((s: Session) => void) | null = null;
  private readonly onOnline = () => this.chat?.reconnectNow();
  private readonly onOffline = () => this.chat?.markOffline();
  private typingSweep: ReturnType<typeof setInterval> | null = null;

  private get s(): LiveState {
    return this.store.get();
  }

  private bump(): void {
    const s = this.s;
    this.store.set({ ...s, version: s.version + 1 });
  }

  start(selfId: string, token: string, onNew: (s: Session) => void): void {
    this.stop();
    this.selfId = selfId;
    this.onNewConversation = onNew;
    this.store.set(emptyState());
    const chat = new ChatSocket({
      agent: true,
      self: selfId,
      url: () => socketURL('', '/api/v1/agent/ws', token),
      onFrame: (f) => this.onFrame(f),
      onState: (st) => {
        this.s.conn = st;
        this.bump();
      },
      onSendFailed: (p, code) => {
        const list = this.s.pending.get(p.sessionId);
        const m = list?.find((x) => x.clientMsgId === p.clientMsgId);
        if (m) m.failed = code;
        this.bump();
      },
      loadHistory: (sid, after) => api.get(`/api/v1/sessions/${sid}/messages`, { after_seq: after, limit: 500 }),
      // Signed out elsewhere, disabled or demoted: back to the sign-in page, as a 401 does.
      onRefused: () => signedOut(),
    });
    this.chat = chat;
    addEventListener('online', this.onOnline);
    addEventListener('offline', this.onOffline);
    this.typingSweep = setInterval(() => {
      const now = Date.now();
      let changed = false;
      for (const [k, until] of this.s.typing) {
        if (until < now) {
          this.s.typing.delete(k);
          changed = true;
        }
      }
      if (changed) this.bump();
    }, 1000);
    chat.start();
    void this.loadMine();
  }

  stop(): void {
    this.chat?.stop();
    this.chat = null;
    removeEventListener('online', this.onOnline);
    removeEventListener('offline', this.onOffline);
    if (this.typingSweep) clearInterval(this.typingSweep);
  }

  /** Sessions assigned to me, with their details (the socket only says id and status). */
  private async loadMine(): Promise<void> {
    try {
      const r = await api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'assigned', agent_id: this.selfId, limit: 200 });
      for (const x of r.sessions) if (x.agent_id === this.selfId) this.s.sessions.set(x.id, { ...x, ...this.s.sessions.get(x.id), profile: x.profile });
      this.bump();
    } catch {
      /* the socket's session frames still bring them */
    }
  }

  select(sessionId: string | null): void {
    this.selected = sessionId;
    if (!sessionId) return;
    this.s.unread.delete(sessionId);
    this.s.fresh.delete(sessionId);
    this.bump();
    this.markRead(sessionId);
  }

  private markRead(sessionId: string): void {
    if (document.visibilityState === 'hidden') return;
    const msgs = this.s.messages.get(sessionId);
    const last = msgs?.filter((m) => m.sender.type === 'customer').pop();
    if (last) this.chat?.read(sessionId, last.seq);
  }

  /** Whether this session streams over my socket (assigned to me and open). */
  isLive(sessionId: string): boolean {
    const x = this.s.sessions.get(sessionId);
    return !!x && x.status === 'assigned' && x.agent_id === this.selfId;
  }

  /** Load a session's history over REST (closed or someone else's conversations). */
  async loadHistory(sessionId: string): Promise<void> {
    const have = this.s.messages.get(sessionId) ?? [];
    const after = have.length ? have[have.length - 1].seq : 0;
    const more = await allMessages(sessionId, after);
    this.s.messages.set(sessionId, mergeBySeq(have, more));
    if (this.chat && more.length) this.chat.seq.advance(sessionId, more[more.length - 1].seq);
    this.bump();
  }

  rememberSession(x: Session): void {
    this.s.sessions.set(x.id, { ...this.s.sessions.get(x.id), ...x });
    this.bump();
  }

  send(sessionId: string, text: string): void {
    if (!this.chat) return;
    const p = this.chat.send(sessionId, text);
    const list = this.s.pending.get(sessionId) ?? [];
    list.push({ clientMsgId: p.clientMsgId, text, at: Date.now() });
    this.s.pending.set(sessionId, list);
    this.bump();
  }

  retry(sessionId: string, clientMsgId: string): void {
    const m = this.s.pending.get(sessionId)?.find((x) => x.clientMsgId === clientMsgId);
    if (m) m.failed = undefined;
    this.chat?.retry(clientMsgId);
    this.bump();
  }

  typing(sessionId: string, state: 'start' | 'stop'): void {
    this.chat?.typing(sessionId, state);
  }

  private onFrame(f: ServerFrame): void {
    const s = this.s;
    switch (f.type) {
      case 'message': {
        const list = s.messages.get(f.session_id) ?? [];
        s.messages.set(f.session_id, mergeBySeq(list, [f]));
        const pend = s.pending.get(f.session_id);
        if (pend && f.client_msg_id) s.pending.set(f.session_id, pend.filter((p) => p.clientMsgId !== f.client_msg_id));
        if (f.sender.type === 'customer') {
          s.typing.delete(f.session_id);
          if (this.selected === f.session_id && document.visibilityState !== 'hidden') this.markRead(f.session_id);
          else s.unread.set(f.session_id, (s.unread.get(f.session_id) ?? 0) + 1);
        }
        const sess = s.sessions.get(f.session_id);
        if (sess && f.seq > sess.last_seq) sess.last_seq = f.seq;
        this.bump();
        return;
      }
      case 'session':
        this.onSession(f);
        return;
      case 'typing':
        if (f.sender.type === 'customer') {
          if (f.state === 'start') s.typing.set(f.session_id, Date.now() + 6000);
          else s.typing.delete(f.session_id);
          this.bump();
        }
        return;
      case 'read':
        if (f.sender.type === 'customer') {
          s.customerRead.set(f.session_id, Math.max(f.seq, s.customerRead.get(f.session_id) ?? 0));
          this.bump();
        }
        return;
      case 'resumed':
      case 'ack':
      case 'error':
        this.bump();
        return;
    }
  }

  private onSession(f: SessionFrame): void {
    const s = this.s;
    const known = s.sessions.get(f.session_id);
    if (known) {
      known.status = f.status;
      known.agent_id = f.agent_id;
      if (f.status === 'closed' && !known.closed_at) known.closed_at = new Date().toISOString();
      this.bump();
      if (f.status === 'closed' || f.agent_id !== this.selfId) void this.refresh(f.session_id);
      return;
    }
    if (f.status !== 'assigned' || f.agent_id !== this.selfId) return;
    // A conversation I did not know: fetch its details and tell the agent.
    void api
      .get<Session>(`/api/v1/sessions/${f.session_id}`)
      .then((x) => {
        const isNew = !s.sessions.has(x.id);
        s.sessions.set(x.id, x);
        if (isNew && this.selected !== x.id) {
          s.fresh.add(x.id);
          this.onNewConversation?.(x);
        }
        this.bump();
      })
      .catch(() => {
        /* listed on the next load */
      });
  }

  private async refresh(sessionId: string): Promise<void> {
    try {
      const x = await api.get<Session>(`/api/v1/sessions/${sessionId}`);
      this.rememberSession(x);
    } catch {
      /* no longer visible to me (transferred away) */
    }
  }
}

export const live = new Live();
