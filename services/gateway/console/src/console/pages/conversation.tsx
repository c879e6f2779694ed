// One conversation: transcript, live messages, typing and read state, composer, and
// the customer's profile with earlier conversations. Used by the inbox (live, mine),
// the monitor (anyone's, supervisors can transfer/close) and reviews (read-only).

import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import { errorMessage } from '../../shared/forms';
import type { MessageFrame, Session, User } from '../../shared/types';
import { api, customerName, fmtTime, locale, navigate, toast, useStore, useT } from '../core';
import { live } from '../live';
import { Avatar, Button, Empty, Field, FormError, Icon, Modal, Stars, useLoad } from '../ui';

export function StatusChip({ status }: { status: string }) {
  const t = useT();
  return <span class={`chip chip-${status}`}>{t.t(`session.status.${status}`)}</span>;
}

export function Conversation({ sessionId, user, mode }: { sessionId: string; user: User; mode: 'inbox' | 'monitor' | 'review' }) {
  const t = useT();
  const l = useStore(locale);
  const st = useStore(live.store);
  const [loadErr, setLoadErr] = useState('');
  const [showTransfer, setShowTransfer] = useState(false);
  const [closing, setClosing] = useState(false);
  const session = st.sessions.get(sessionId);
  const isLive = live.isLive(sessionId) && mode === 'inbox';
  const messages = st.messages.get(sessionId) ?? [];
  const pending = st.pending.get(sessionId) ?? [];
  const logRef = useRef<HTMLDivElement>(null);

  // Details and history. Live sessions stream over the socket (resume fills history);
  // others are read over REST and refreshed while open.
  useEffect(() => {
    let stop = false;
    setLoadErr('');
    live.select(sessionId);
    const load = async () => {
      try {
        const x = await api.get<Session>(`/api/v1/sessions/${sessionId}`);
        if (stop) return;
        live.rememberSession(x);
        if (!live.isLive(sessionId) || mode !== 'inbox') await live.loadHistory(sessionId);
      } catch (e) {
        if (!stop) setLoadErr(errorMessage(e, t));
      }
    };
    void load();
    const timer = setInterval(() => {
      if (!live.isLive(sessionId) || mode !== 'inbox') void load();
    }, 3000);
    return () => {
      stop = true;
      clearInterval(timer);
      live.select(null);
    };
  }, [sessionId, mode]);

  useLayoutEffect(() => {
    const el = logRef.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [messages.length, pending.length, st.typing.get(sessionId)]);

  if (loadErr && !session)
    return (
      <div class="conv">
        <Empty icon="alert" title={loadErr} />
      </div>
    );
  if (!session)
    return (
      <div class="conv">
        <div class="loading">
          <span class="spinner dark" />
        </div>
      </div>
    );

  const name = customerName(t, session);
  const canManage = session.status !== 'closed' && mode !== 'review' && (user.role === 'admin' || user.role === 'supervisor' || (user.role === 'agent' && session.agent_id === user.id));
  const readSeq = st.customerRead.get(sessionId) ?? 0;
  const lastMine = [...messages].reverse().find((m) => m.sender.type === 'agent');
  const typing = (st.typing.get(sessionId) ?? 0) > Date.now();

  const close = async () => {
    if (!confirm(t.t('inbox.close_confirm'))) return;
    setClosing(true);
    try {
      const x = await api.post<Session>(`/api/v1/sessions/${sessionId}/close`, {});
      live.rememberSession(x);
    } catch (e) {
      toast(errorMessage(e, t), 'error');
    } finally {
      setClosing(false);
    }
  };

  return (
    <div class="conv-wrap">
      <section class="conv" data-testid="conversation">
        <header class="conv-head">
          <Avatar name={name} />
          <div class="conv-title">
            <div class="conv-name">{name}</div>
            <div class="conv-sub">
              <StatusChip status={session.status} /> <span class="muted">{session.channel}</span>
              {session.group ? <span class="muted"> · {session.group}</span> : null}
            </div>
          </div>
          <div class="conv-actions">
            {canManage ? (
              <>
                <Button small icon="swap" onClick={() => setShowTransfer(true)} data-testid="transfer">
                  {t.t('inbox.transfer')}
                </Button>
                <Button small variant="danger" icon="check" busy={closing} onClick={close} data-testid="close-conversation">
                  {t.t('inbox.close')}
                </Button>
              </>
            ) : null}
          </div>
        </header>
        <div class="log" ref={logRef} data-testid="message-log">
          {messages.length === 0 && pending.length === 0 ? <div class="log-empty">{t.t('inbox.no_messages')}</div> : null}
          {messages.map((m, i) => (
            <Bubble m={m} prev={messages[i - 1]} self={user.id} read={m === lastMine && readSeq >= m.seq} l={l} />
          ))}
          {pending.map((p) => (
            <div class={`msg mine${p.failed ? ' failed' : ' pending'}`} data-testid="pending-message">
              <div class="bubble">{p.text}</div>
              <div class="msg-meta">
                {p.failed ? (
                  <>
                    {t.t('inbox.failed')} ·{' '}
                    <button class="link" onClick={() => live.retry(sessionId, p.clientMsgId)}>
                      {t.t('common.retry')}
                    </button>
                  </>
                ) : (
                  t.t('inbox.sending')
                )}
              </div>
            </div>
          ))}
          {typing ? (
            <div class="typing-row" data-testid="typing">
              <span class="typing-dots">
                <i />
                <i />
                <i />
              </span>{' '}
              {t.t('inbox.typing', { name })}
            </div>
          ) : null}
        </div>
        {session.status === 'closed' ? (
          <div class="conv-closed" data-testid="closed-banner">
            <Icon name="check" size={16} /> {t.t('inbox.closed_banner')}
            {session.csat ? (
              <span class="csat-inline" data-testid="csat">
                {t.t('profile.csat')}: <Stars score={session.csat.score} /> {session.csat.comment ? <q>{session.csat.comment}</q> : null}
              </span>
            ) : null}
          </div>
        ) : isLive ? (
          <Composer sessionId={sessionId} />
        ) : (
          <div class="conv-closed muted">{t.t('inbox.readonly')}</div>
        )}
      </section>
      <ProfilePanel session={session} />
      {showTransfer ? <TransferDialog session={session} onClose={() => setShowTransfer(false)} /> : null}
    </div>
  );
}

function Bubble({ m, prev, self, read, l }: { m: MessageFrame; prev?: MessageFrame; self: string; read: boolean; l: string }) {
  const t = useT();
  if (m.sender.type === 'system') {
    return (
      <div class="msg-system" data-seq={m.seq}>
        {m.text}
      </div>
    );
  }
  const mine = m.sender.type === 'agent' || m.sender.type === 'bot';
  const grouped = prev && prev.sender.type === m.sender.type && prev.sender.id === m.sender.id && Date.parse(m.created_at) - Date.parse(prev.created_at) < 120_000;
  return (
    <div class={`msg ${mine ? 'mine' : 'theirs'}${grouped ? ' grouped' : ''}${m.sender.type === 'agent' && m.sender.id !== self ? ' other-agent' : ''}`} data-seq={m.seq} data-testid="message">
      <div class="bubble">{m.text}</div>
      <div class="msg-meta">
        {m.sender.type === 'bot' ? 'Bot · ' : ''}
        {fmtTime(m.created_at, l as never)}
        {read ? <span class="read"> · {t.t('inbox.read')}</span> : null}
      </div>
    </div>
  );
}

function Composer({ sessionId }: { sessionId: string }) {
  const t = useT();
  const [text, setText] = useState('');
  const typingAt = useRef(0);
  const stopTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    ref.current?.focus();
    setText('');
  }, [sessionId]);
  const stopTyping = () => {
    if (stopTimer.current) clearTimeout(stopTimer.current);
    if (typingAt.current) live.typing(sessionId, 'stop');
    typingAt.current = 0;
  };
  const send = () => {
    const v = text.trim();
    if (!v) return;
    live.send(sessionId, v);
    setText('');
    stopTyping();
  };
  return (
    <div class="composer">
      <textarea
        ref={ref}
        value={text}
        rows={2}
        placeholder={t.t('inbox.composer')}
        data-testid="composer"
        onInput={(e) => {
          setText((e.target as HTMLTextAreaElement).value);
          const now = Date.now();
          if (now - typingAt.current > 3000) {
            typingAt.current = now;
            live.typing(sessionId, 'start');
          }
          if (stopTimer.current) clearTimeout(stopTimer.current);
          stopTimer.current = setTimeout(stopTyping, 3000);
        }}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
            e.preventDefault();
            send();
          }
        }}
      />
      <Button variant="primary" icon="send" onClick={send} disabled={!text.trim()} data-testid="send">
        {t.t('inbox.send')}
      </Button>
    </div>
  );
}

function ProfilePanel({ session }: { session: Session }) {
  const t = useT();
  const l = useStore(locale);
  const name = customerName(t, session);
  const history = useLoad(() => api.get<{ sessions: Session[] }>(`/api/v1/sessions/${session.id}/customer_sessions`).then((r) => r.sessions), [session.id]);
  const profile = Object.entries(session.profile ?? {}).filter(([k]) => k !== 'name');
  return (
    <aside class="profile" data-testid="profile">
      <div class="profile-head">
        <Avatar name={name} size={56} />
        <div class="profile-name">{name}</div>
        {session.profile?.user_level ? <span class="chip chip-vip">{String(session.profile.user_level)}</span> : null}
      </div>
      <dl class="kv">
        <dt>{t.t('profile.user_id')}</dt>
        <dd class="mono">{session.user_id}</dd>
        <dt>{t.t('profile.channel')}</dt>
        <dd>{session.channel}</dd>
        {session.page_url ? (
          <>
            <dt>{t.t('profile.page')}</dt>
            <dd class="ellipsis" title={session.page_url}>
              {session.page_url}
            </dd>
          </>
        ) : null}
        <dt>{t.t('profile.started')}</dt>
        <dd>{fmtTime(session.created_at, l)}</dd>
        {session.group ? (
          <>
            <dt>{t.t('profile.group')}</dt>
            <dd>{session.group}</dd>
          </>
        ) : null}
        {profile.map(([k, v]) => (
          <>
            <dt>{k}</dt>
            <dd>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</dd>
          </>
        ))}
      </dl>
      <h4>{t.t('profile.history')}</h4>
      {history.data && history.data.length === 0 ? <p class="muted small">{t.t('profile.no_history')}</p> : null}
      {history.error ? <p class="muted small">—</p> : null}
      <ul class="history">
        {(history.data ?? []).map((h) => (
          <li>
            <a
              href={`/reviews/${h.id}`}
              onClick={(e) => {
                e.preventDefault();
                navigate(location.pathname.startsWith('/inbox') ? `/inbox/${h.id}` : `/reviews/${h.id}`);
              }}
            >
              <StatusChip status={h.status} /> {fmtTime(h.created_at, l)}
            </a>
            {h.csat ? <Stars score={h.csat.score} size={11} /> : null}
          </li>
        ))}
      </ul>
    </aside>
  );
}

function TransferDialog({ session, onClose }: { session: Session; onClose: () => void }) {
  const t = useT();
  const [mode, setMode] = useState<'agent' | 'group'>('group');
  const [target, setTarget] = useState('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);
  const agents = useLoad(() => api.get<{ agents: User[] }>('/api/v1/agents').then((r) => r.agents.filter((a) => !a.disabled && a.role !== 'qa' && a.id !== session.agent_id)), []);
  const groups = useLoad(() => api.get<{ groups: { name: string }[] }>('/api/v1/groups').then((r) => r.groups), []);
  useEffect(() => {
    if (agents.data && agents.data.length && !groups.data?.length) setMode('agent');
  }, [agents.data, groups.data]);
  const submit = async () => {
    if (!target) return;
    setBusy(true);
    setErr('');
    try {
      const x = await api.post<Session>(`/api/v1/sessions/${session.id}/transfer`, mode === 'agent' ? { agent_id: target } : { group: target });
      live.rememberSession(x);
      toast(t.t('transfer.done'));
      onClose();
    } catch (e) {
      setErr(errorMessage(e, t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal
      title={t.t('transfer.title')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t.t('common.cancel')}</Button>
          <Button variant="primary" busy={busy} disabled={!target} onClick={submit}>
            {t.t('transfer.submit')}
          </Button>
        </>
      }
    >
      <div class="seg">
        <button class={mode === 'group' ? 'on' : ''} onClick={() => (setMode('group'), setTarget(''))}>
          {t.t('transfer.to_group')}
        </button>
        <button class={mode === 'agent' ? 'on' : ''} onClick={() => (setMode('agent'), setTarget(''))} disabled={!!agents.error}>
          {t.t('transfer.to_agent')}
        </button>
      </div>
      <FormError text={err} />
      {mode === 'group' ? (
        <Field label={t.t('transfer.group')} id="transfer-group">
          <select id="transfer-group" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
            <option value="">—</option>
            {(groups.data ?? []).map((g) => (
              <option value={g.name}>{g.name}</option>
            ))}
          </select>
        </Field>
      ) : (
        <Field label={t.t('transfer.agent')} id="transfer-agent">
          <select id="transfer-agent" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
            <option value="">—</option>
            {(agents.data ?? []).map((a) => (
              <option value={a.id}>
                {a.name} ({a.email})
              </option>
            ))}
          </select>
        </Field>
      )}
    </Modal>
  );
}
