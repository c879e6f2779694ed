// The customer chat widget: a launcher and a chat panel inside a Shadow DOM, talking to
// the gateway's customer API and socket. The same class renders the live preview in
// the console's channel settings (preview mode: no network, sample messages).

import { ApiClient, ApiError, socketURL } from '../shared/api';
import { ChatSocket, type ConnState } from '../shared/chat';
import { pickLocale, translator, type Locale, type Translator } from '../shared/i18n';
import type { MessageFrame, ServerFrame, SessionStatus, WebSettings, WidgetConfig } from '../shared/types';
import { widgetDicts } from './i18n';
import { anyPageMatches } from './patterns';
import { widgetCSS } from './styles';

export interface Visitor {
  userId: string;
  profile: Record<string, unknown>;
}

export interface WidgetOptions {
  /** Origin of the Helmdesk gateway ("https://help.example.com"). */
  base: string;
  channelKey: string;
  config: WidgetConfig;
  visitor: Visitor;
  locale?: Locale;
  /** Preview: render only, with sample messages and no network. */
  preview?: boolean;
  storage?: Storage | null;
  pageURL?: string;
}

interface StoredSession {
  session_id: string;
  customer_token: string;
  expires_at: string;
  rated?: boolean;
}

const ICON_CHAT = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.6A8 8 0 1 1 21 12z"/></svg>';
const ICON_CLOSE = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round"><path d="M6 6l12 12M18 6L6 18"/></svg>';
const ICON_DOWN = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" stroke-linecap="round" stroke-linejoin="round"><path d="M6 9l6 6 6-6"/></svg>';
const ICON_SEND = '<svg viewBox="0 0 24 24" fill="currentColor"><path d="M3.4 20.4l17.5-7.5a1 1 0 0 0 0-1.8L3.4 3.6a1 1 0 0 0-1.4 1.1L4 11l9 1-9 1-2 6.3a1 1 0 0 0 1.4 1.1z"/></svg>';
const ICON_STAR = '<svg viewBox="0 0 24 24" fill="currentColor"><path d="M12 2.8l2.8 5.8 6.4.9-4.6 4.5 1.1 6.3L12 17.3l-5.7 3 1.1-6.3-4.6-4.5 6.4-.9z"/></svg>';

/** Black or white, whichever reads better on the brand colour. */
export function textOn(hex: string): string {
  const m = /^#?([0-9a-f]{6})$/i.exec(hex);
  if (!m) return '#fff';
  const n = parseInt(m[1], 16);
  const lin = (c: number) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const L = 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
  return L > 0.45 ? '#111827' : '#ffffff';
}

function h<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, html?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (html) el.innerHTML = html; // only our own static SVG markup, never user text
  return el;
}

function timeOf(iso?: string): string {
  const d = iso ? new Date(iso) : new Date();
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export class HelmdeskWidget {
  readonly host: HTMLElement;
  private readonly root: ShadowRoot;
  private readonly opts: WidgetOptions;
  private t: Translator;
  private web: WebSettings;
  private readonly api: ApiClient;
  private chat: ChatSocket | null = null;
  private stored: StoredSession | null = null;
  private status: SessionStatus | null = null;
  private queuePos = 0;
  private isOpen = false;
  private unread = 0;
  private lastOtherSeq = 0;
  private typingSent = 0;
  private typingTimer: ReturnType<typeof setTimeout> | null = null;
  private theirTypingTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly pendingEls = new Map<string, HTMLElement>();
  private starting: Promise<StoredSession> | null = null;
  private rating = 0;

  // Elements.
  private style!: HTMLStyleElement;
  private wrap!: HTMLDivElement;
  private launcher!: HTMLButtonElement;
  private badge!: HTMLSpanElement;
  private titleEl!: HTMLHeadingElement;
  private subEl!: HTMLDivElement;
  private connEl!: HTMLDivElement;
  private log!: HTMLDivElement;
  private typingEl!: HTMLDivElement;
  private input!: HTMLTextAreaElement;
  private sendBtn!: HTMLButtonElement;
  private compose!: HTMLDivElement;
  private csatEl!: HTMLDivElement;
  private againEl!: HTMLDivElement;

  constructor(host: HTMLElement, opts: WidgetOptions) {
    this.host = host;
    this.opts = opts;
    this.web = opts.config.web;
    this.t = translator(widgetDicts, opts.locale ?? pickLocale(navigator.languages));
    this.api = new ApiClient({ base: opts.base, token: () => this.stored?.customer_token });
    this.root = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
    this.build();
    if (opts.preview) {
      this.renderPreview();
      return;
    }
    this.stored = this.load();
    if (this.stored) this.connect();
    this.setupTriggers();
    addEventListener('online', () => this.chat?.reconnectNow());
    addEventListener('offline', () => {
      this.chat?.markOffline();
      this.renderConn();
    });
    document.addEventListener('visibilitychange', () => this.markRead());
  }

  // --- public API ---

  open(): void {
    this.setOpen(true);
  }
  close(): void {
    this.setOpen(false);
  }
  toggle(): void {
    this.setOpen(!this.isOpen);
  }

  /** Preview: apply new settings live. */
  update(config: WidgetConfig, locale?: Locale): void {
    this.web = config.web;
    if (locale) this.t = translator(widgetDicts, locale);
    this.root.innerHTML = '';
    this.pendingEls.clear();
    this.build();
    if (this.opts.preview) this.renderPreview();
  }

  destroy(): void {
    this.chat?.stop();
    this.root.innerHTML = '';
  }

  // --- building ---

  private build(): void {
    const t = this.t.t;
    this.style = h('style');
    this.style.textContent = widgetCSS(this.web.color, textOn(this.web.color));
    this.wrap = h('div', `hd ${this.web.position === 'left' ? 'left' : 'right'}${this.opts.preview ? ' preview' : ''}`);
    this.wrap.setAttribute('part', 'widget');

    this.launcher = h('button', 'launcher', ICON_CHAT);
    this.launcher.type = 'button';
    this.launcher.setAttribute('aria-label', t('launcher.open'));
    this.launcher.dataset.hd = 'launcher';
    this.badge = h('span', 'badge');
    this.launcher.append(this.badge);
    this.launcher.onclick = () => this.toggle();
    if (!this.web.triggers.click && !this.opts.preview) this.launcher.style.display = 'none';

    const panel = h('div', 'panel');
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', this.web.title);
    panel.dataset.hd = 'panel';
    const head = h('div', 'head');
    const titles = h('div', 'titles');
    this.titleEl = h('h3', 'title');
    this.titleEl.textContent = this.web.title;
    this.subEl = h('div', 'sub');
    titles.append(this.titleEl, this.subEl);
    const x = h('button', 'x', ICON_DOWN);
    x.type = 'button';
    x.setAttribute('aria-label', t('launcher.close'));
    x.onclick = () => this.setOpen(false);
    head.append(h('div', 'avatar', ICON_CHAT), titles, x);

    this.connEl = h('div', 'conn');
    this.connEl.setAttribute('role', 'status');
    this.connEl.dataset.hd = 'conn';
    this.log = h('div', 'log');
    this.log.setAttribute('aria-live', 'polite');
    this.log.dataset.hd = 'log';
    this.typingEl = h('div', 'typing', '<i></i><i></i><i></i>');
    this.typingEl.setAttribute('aria-label', t('typing'));
    this.typingEl.dataset.hd = 'typing';
    this.log.append(this.typingEl);
    if (this.web.greeting) this.addSystemBubble(this.web.greeting);

    this.compose = h('div', 'compose');
    this.input = h('textarea');
    this.input.rows = 1;
    this.input.placeholder = t('composer.placeholder');
    this.input.setAttribute('aria-label', t('composer.placeholder'));
    this.input.dataset.hd = 'input';
    this.input.maxLength = 4000;
    this.input.oninput = () => this.onInput();
    this.input.onkeydown = (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.submit();
      }
    };
    this.sendBtn = h('button', 'send', ICON_SEND);
    this.sendBtn.type = 'button';
    this.sendBtn.setAttribute('aria-label', t('composer.send'));
    this.sendBtn.dataset.hd = 'send';
    this.sendBtn.disabled = true;
    this.sendBtn.onclick = () => this.submit();
    this.compose.append(this.input, this.sendBtn);

    this.csatEl = h('div', 'csat');
    this.csatEl.dataset.hd = 'csat';
    this.againEl = h('div', 'again');
    const again = h('button', 'btn');
    again.type = 'button';
    again.textContent = t('new_conversation');
    again.dataset.hd = 'new';
    again.onclick = () => this.newConversation();
    this.againEl.append(again);

    const foot = h('div', 'foot');
    foot.textContent = t('powered');
    panel.append(head, this.connEl, this.log, this.csatEl, this.againEl, this.compose, foot);
    this.wrap.append(panel, this.launcher);
    this.root.append(this.style, this.wrap);
    this.renderHeader();
    this.renderConn();
    if (this.isOpen) this.wrap.classList.add('open');
  }

  private renderPreview(): void {
    this.setOpen(true);
    this.addBubble({ mine: true, text: this.t.t('preview.customer'), time: timeOf() });
    this.addBubble({ mine: false, text: this.t.t('preview.agent'), time: timeOf() });
    this.status = 'assigned';
    this.renderHeader();
  }

  // --- state rendering ---

  private setOpen(open: boolean): void {
    this.isOpen = open;
    this.wrap.classList.toggle('open', open);
    this.launcher.innerHTML = open ? ICON_CLOSE : ICON_CHAT;
    this.launcher.append(this.badge);
    this.launcher.setAttribute('aria-label', this.t.t(open ? 'launcher.close' : 'launcher.open'));
    if (open) {
      this.unread = 0;
      this.renderBadge();
      this.markRead();
      if (!this.opts.preview) setTimeout(() => this.input.focus({ preventScroll: true }), 50);
      this.scrollDown();
    }
  }

  private renderBadge(): void {
    this.badge.textContent = String(this.unread);
    this.badge.classList.toggle('on', this.unread > 0);
  }

  private renderHeader(): void {
    const t = this.t.t;
    let sub = t('header.online');
    if (this.status === 'queued') sub = this.queuePos > 0 ? t('header.queued', { n: this.queuePos }) : t('header.queued_soon');
    else if (this.status === 'assigned') sub = t('header.assigned');
    else if (this.status === 'closed') sub = t('header.closed');
    this.subEl.textContent = sub;
    const closed = this.status === 'closed';
    this.compose.style.display = closed ? 'none' : '';
  }

  private renderConn(state?: ConnState): void {
    const s = state ?? this.chat?.state;
    let text = '';
    let bad = false;
    if (!navigator.onLine) {
      text = this.t.t('conn.offline');
      bad = true;
    } else if (s === 'reconnecting') {
      text = this.t.t('conn.reconnecting');
    }
    this.connEl.textContent = text;
    this.connEl.classList.toggle('on', !!text);
    this.connEl.classList.toggle('bad', bad);
  }

  private scrollDown(): void {
    this.log.scrollTop = this.log.scrollHeight;
  }

  private addSystemBubble(text: string): HTMLElement {
    const el = h('div', 'row them');
    const b = h('div', 'bubble');
    b.textContent = text;
    el.append(b);
    this.log.insertBefore(el, this.typingEl);
    return el;
  }

  private addBubble(m: { mine: boolean; text: string; time: string; pending?: boolean; system?: boolean; seq?: number }): HTMLElement {
    let el: HTMLElement;
    if (m.system) {
      el = h('div', 'sys');
      el.textContent = m.text;
    } else {
      el = h('div', `row ${m.mine ? 'me' : 'them'}${m.pending ? ' pending' : ''}`);
      const b = h('div', 'bubble');
      b.textContent = m.text;
      const meta = h('div', 'meta');
      meta.textContent = m.pending ? this.t.t('msg.sending') : m.time;
      el.append(b, meta);
    }
    el.dataset.hd = 'msg';
    if (m.seq) el.dataset.seq = String(m.seq);
    this.log.insertBefore(el, m.seq ? this.slotFor(m.seq) : this.typingEl);
    this.scrollDown();
    return el;
  }

  /** Where a message with this seq goes: before any later message, and before the
   * messages still being sent (they get their seq, and their place, when echoed). */
  private slotFor(seq: number): Element {
    for (const el of this.log.querySelectorAll<HTMLElement>('[data-hd=msg]')) {
      const s = Number(el.dataset.seq || 0);
      if ((s && s > seq) || (!s && (el.classList.contains('pending') || el.classList.contains('failed')))) return el;
    }
    return this.typingEl;
  }

  // --- sessions and the socket ---

  private storageKey(): string {
    return `helmdesk:${this.opts.channelKey}:${this.opts.visitor.userId}`;
  }

  private load(): StoredSession | null {
    try {
      const raw = this.opts.storage?.getItem(this.storageKey());
      if (!raw) return null;
      const s = JSON.parse(raw) as StoredSession;
      if (!s.session_id || !s.customer_token || Date.parse(s.expires_at) < Date.now() + 60_000) return null;
      return s;
    } catch {
      return null;
    }
  }

  private save(): void {
    try {
      if (this.stored) this.opts.storage?.setItem(this.storageKey(), JSON.stringify(this.stored));
      else this.opts.storage?.removeItem(this.storageKey());
    } catch {
      /* private mode: the chat still works for this page */
    }
  }

  private async startSession(): Promise<StoredSession> {
    if (this.stored) return this.stored;
    if (!this.starting) {
      this.starting = this.api
        .post<{ session_id: string; customer_token: string; expires_at: string; status: SessionStatus; queue_position?: number }>('/api/v1/customer/sessions', {
          user_id: this.opts.visitor.userId,
          profile: this.opts.visitor.profile,
          page_url: this.opts.pageURL ?? location.href,
          channel_key: this.opts.channelKey,
        })
        .then((r) => {
          this.stored = { session_id: r.session_id, customer_token: r.customer_token, expires_at: r.expires_at };
          this.status = r.status;
          this.queuePos = r.queue_position ?? 0;
          this.save();
          this.renderHeader();
          this.connect();
          return this.stored;
        })
        .finally(() => {
          this.starting = null;
        });
    }
    return this.starting;
  }

  private connect(): void {
    const s = this.stored;
    if (!s || this.chat) return;
    const chat = new ChatSocket({
      agent: false,
      url: () => socketURL(this.opts.base, '/api/v1/customer/ws', s.customer_token),
      onFrame: (f) => this.onFrame(f),
      onState: (st) => this.renderConn(st),
      onSendFailed: (p) => {
        const el = this.pendingEls.get(p.clientMsgId);
        if (el) this.markFailed(el, p.clientMsgId);
      },
      loadHistory: (sid, after) => this.api.get(`/api/v1/sessions/${sid}/messages`, { after_seq: after, limit: 200 }),
    });
    this.chat = chat;
    chat.watch(s.session_id);
    chat.start();
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'message':
        this.onMessage(f);
        break;
      case 'session':
        this.status = f.status;
        this.queuePos = f.queue_position ?? 0;
        this.renderHeader();
        if (f.status === 'closed') this.onClosed();
        break;
      case 'typing':
        if (f.sender.type !== 'customer') this.showTheirTyping(f.state === 'start');
        break;
      case 'read':
        if (f.sender.type !== 'customer') this.markSeenUpTo(f.seq);
        break;
    }
  }

  private onMessage(m: MessageFrame): void {
    const mine = m.sender.type === 'customer';
    const pendingEl = m.client_msg_id ? this.pendingEls.get(m.client_msg_id) : undefined;
    if (pendingEl) {
      this.pendingEls.delete(m.client_msg_id);
      pendingEl.classList.remove('pending', 'failed');
      pendingEl.dataset.seq = String(m.seq);
      const meta = pendingEl.querySelector('.meta');
      if (meta) meta.textContent = timeOf(m.created_at);
      // Others' messages may have arrived while this one was pending: keep seq order.
      this.log.insertBefore(pendingEl, this.slotFor(m.seq));
      return;
    }
    if (!mine) this.showTheirTyping(false);
    this.addBubble({ mine, text: m.text, time: timeOf(m.created_at), system: m.sender.type === 'system', seq: m.seq });
    if (!mine) {
      this.lastOtherSeq = Math.max(this.lastOtherSeq, m.seq);
      if (!this.isOpen && m.sender.type !== 'system') {
        this.unread++;
        this.renderBadge();
      }
      this.markRead();
    }
  }

  private markSeenUpTo(seq: number): void {
    for (const el of this.log.querySelectorAll<HTMLElement>('.row.me')) {
      const s = Number(el.dataset.seq || 0);
      if (s && s <= seq) el.dataset.read = '1';
    }
  }

  private markRead(): void {
    if (!this.isOpen || document.visibilityState === 'hidden' || !this.stored || !this.chat) return;
    if (this.lastOtherSeq > 0) this.chat.read(this.stored.session_id, this.lastOtherSeq);
  }

  private showTheirTyping(on: boolean): void {
    this.typingEl.classList.toggle('on', on);
    if (this.theirTypingTimer) clearTimeout(this.theirTypingTimer);
    if (on) {
      this.theirTypingTimer = setTimeout(() => this.typingEl.classList.remove('on'), 6000);
      this.scrollDown();
    }
  }

  private onInput(): void {
    this.sendBtn.disabled = this.input.value.trim() === '';
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(120, this.input.scrollHeight + 2)}px`;
    const s = this.stored;
    if (!s || !this.chat) return;
    const now = Date.now();
    if (now - this.typingSent > 3000) {
      this.typingSent = now;
      this.chat.typing(s.session_id, 'start');
    }
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.stopTyping(), 3000);
  }

  private stopTyping(): void {
    if (this.typingTimer) clearTimeout(this.typingTimer);
    this.typingTimer = null;
    if (this.typingSent && this.stored && this.chat) this.chat.typing(this.stored.session_id, 'stop');
    this.typingSent = 0;
  }

  private async submit(): Promise<void> {
    const text = this.input.value.trim();
    if (!text || this.opts.preview) return;
    this.input.value = '';
    this.onInput();
    this.stopTyping();
    const el = this.addBubble({ mine: true, text, time: '', pending: true });
    el.dataset.sentAt = String(Date.now());
    try {
      const s = await this.startSession();
      const p = this.chat!.send(s.session_id, text);
      this.pendingEls.set(p.clientMsgId, el);
      el.dataset.cmid = p.clientMsgId;
    } catch (e) {
      this.markFailed(el, null, text, e);
    }
  }

  private markFailed(el: HTMLElement, clientMsgId: string | null, text?: string, err?: unknown): void {
    el.classList.remove('pending');
    el.classList.add('failed');
    const meta = el.querySelector('.meta')!;
    meta.textContent = err instanceof ApiError && err.status >= 500 ? this.t.t('error.start') : this.t.t('msg.failed');
    const retry = h('button');
    retry.type = 'button';
    retry.textContent = this.t.t('msg.retry');
    retry.onclick = () => {
      el.classList.remove('failed');
      el.classList.add('pending');
      meta.textContent = this.t.t('msg.sending');
      if (clientMsgId) {
        this.chat?.retry(clientMsgId);
      } else if (text) {
        el.remove();
        this.input.value = text;
        void this.submit();
      }
    };
    meta.append(retry);
  }

  // --- closing and rating ---

  private onClosed(): void {
    this.showTheirTyping(false);
    if (this.stored && !this.stored.rated) this.showCSAT();
    else this.againEl.classList.add('on');
  }

  private showCSAT(): void {
    const t = this.t.t;
    const c = this.csatEl;
    c.innerHTML = '';
    const title = h('h4');
    title.textContent = t('csat.title');
    const stars = h('div', 'stars');
    stars.setAttribute('role', 'radiogroup');
    const starEls: HTMLButtonElement[] = [];
    for (let i = 1; i <= 5; i++) {
      const s = h('button', 'star', ICON_STAR);
      s.type = 'button';
      s.setAttribute('aria-label', t('csat.star', { n: i }));
      s.dataset.score = String(i);
      s.onclick = () => {
        this.rating = i;
        starEls.forEach((x, j) => x.classList.toggle('on', j < i));
        submit.disabled = false;
      };
      starEls.push(s);
      stars.append(s);
    }
    const comment = h('textarea');
    comment.placeholder = t('csat.comment');
    comment.maxLength = 1000;
    const submit = h('button', 'btn');
    submit.type = 'button';
    submit.textContent = t('csat.submit');
    submit.disabled = true;
    submit.dataset.hd = 'csat-submit';
    const skip = h('button', 'link');
    skip.type = 'button';
    skip.textContent = t('csat.skip');
    skip.onclick = () => this.finishCSAT(false);
    const err = h('div', 'err');
    submit.onclick = async () => {
      if (!this.stored || !this.rating) return;
      submit.disabled = true;
      err.textContent = '';
      try {
        await this.api.post(`/api/v1/sessions/${this.stored.session_id}/csat`, { score: this.rating, comment: comment.value.trim() });
        this.finishCSAT(true);
      } catch (e) {
        if (e instanceof ApiError && e.code === 'csat_already_submitted') {
          this.finishCSAT(true);
          return;
        }
        err.textContent = e instanceof ApiError && e.status < 500 ? e.message : t('error.generic');
        submit.disabled = false;
      }
    };
    c.append(title, stars, comment, submit, skip, err);
    c.classList.add('on');
    this.scrollDown();
  }

  private finishCSAT(rated: boolean): void {
    if (this.stored) {
      this.stored.rated = true;
      this.save();
    }
    this.csatEl.innerHTML = '';
    if (rated) {
      const done = h('div', 'done');
      done.textContent = this.t.t('csat.thanks');
      done.dataset.hd = 'csat-done';
      this.csatEl.append(done);
    } else {
      this.csatEl.classList.remove('on');
    }
    this.againEl.classList.add('on');
  }

  private newConversation(): void {
    this.chat?.stop();
    this.chat = null;
    this.stored = null;
    this.save();
    this.status = null;
    this.lastOtherSeq = 0;
    this.rating = 0;
    this.pendingEls.clear();
    this.root.innerHTML = '';
    this.build();
    this.setOpen(true);
  }

  // --- triggers ---

  private setupTriggers(): void {
    const tr = this.web.triggers;
    const href = this.opts.pageURL ?? location.href;
    if (tr.page_patterns.length && anyPageMatches(tr.page_patterns, href)) {
      this.setOpen(true);
      return;
    }
    if (tr.auto_open_after_seconds > 0) {
      const flag = `helmdesk:auto:${this.opts.channelKey}`;
      let done = false;
      try {
        done = sessionStorage.getItem(flag) === '1';
      } catch {
        /* ignore */
      }
      if (!done) {
        setTimeout(() => {
          if (this.isOpen) return;
          try {
            sessionStorage.setItem(flag, '1');
          } catch {
            /* ignore */
          }
          this.setOpen(true);
        }, tr.auto_open_after_seconds * 1000);
      }
    }
  }
}
