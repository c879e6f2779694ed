// The agent workspace: conversation list (mine, queued, closed) updating in real
// time, and the selected conversation.

import { useEffect, useState } from 'preact/hooks';
import type { Session, User } from '../../shared/types';
import { api, customerName, navigate, relTime, useStore, useT } from '../core';
import { live } from '../live';
import { Avatar, Empty, Icon, Stars } from '../ui';
import { Conversation } from './conversation';

type Tab = 'mine' | 'queued' | 'closed';

export function InboxPage({ user, id }: { user: User; id?: string }) {
  const t = useT();
  const st = useStore(live.store);
  const [tab, setTab] = useState<Tab>('mine');
  const [queued, setQueued] = useState<Session[] | null>(null);
  const [closed, setClosed] = useState<Session[] | null>(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 30_000);
    return () => clearInterval(timer);
  }, []);

  // Queued and closed lists are read over REST; the queue refreshes while shown.
  useEffect(() => {
    let stop = false;
    const load = () => {
      api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'queued', limit: 100 }).then(
        (r) => !stop && setQueued(r.sessions),
        () => !stop && setQueued([]),
      );
      if (tab === 'closed')
        api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'closed', limit: 50 }).then(
          (r) => !stop && setClosed(r.sessions),
          () => !stop && setClosed([]),
        );
    };
    load();
    const timer = setInterval(load, 5000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [tab]);

  const lastOf = (sid: string) => {
    const ms = st.messages.get(sid);
    return ms && ms.length ? ms[ms.length - 1] : undefined;
  };
  const mine = [...st.sessions.values()]
    .filter((s) => s.status === 'assigned' && s.agent_id === user.id)
    .sort((a, b) => {
      const ta = Date.parse(lastOf(a.id)?.created_at ?? a.assigned_at ?? a.created_at);
      const tb = Date.parse(lastOf(b.id)?.created_at ?? b.assigned_at ?? b.created_at);
      return tb - ta;
    });
  const closedLive = [...st.sessions.values()].filter((s) => s.status === 'closed');
  const closedAll = mergeById(closedLive, closed ?? []).sort((a, b) => Date.parse(b.closed_at ?? b.created_at) - Date.parse(a.closed_at ?? a.created_at));
  const list = tab === 'mine' ? mine : tab === 'queued' ? (queued ?? []) : closedAll;
  const emptyText = tab === 'mine' ? t.t('inbox.empty_mine') : tab === 'queued' ? t.t('inbox.empty_queued') : t.t('inbox.empty_closed');

  return (
    <div class="inbox">
      <section class="conv-list" data-testid="conversation-list">
        <div class="tabs" role="tablist">
          {(['mine', 'queued', 'closed'] as Tab[]).map((k) => (
            <button role="tab" aria-selected={tab === k} class={tab === k ? 'on' : ''} onClick={() => setTab(k)} data-testid={`tab-${k}`}>
              {t.t(`inbox.${k}`)}
              {k === 'mine' && mine.length ? <span class="count">{mine.length}</span> : null}
              {k === 'queued' && queued?.length ? <span class="count warn">{queued.length}</span> : null}
            </button>
          ))}
        </div>
        <div class="conv-items">
          {list.length === 0 ? <Empty icon={tab === 'closed' ? 'check' : 'inbox'} title={emptyText} /> : null}
          {list.map((s) => {
            const last = lastOf(s.id);
            const unread = st.unread.get(s.id) ?? 0;
            const name = customerName(t, s);
            return (
              <a
                href={`/inbox/${s.id}`}
                class={`conv-item${s.id === id ? ' active' : ''}${unread ? ' unread' : ''}`}
                data-testid="conversation-item"
                data-session={s.id}
                onClick={(e) => {
                  e.preventDefault();
                  navigate(`/inbox/${s.id}`);
                }}
              >
                <Avatar name={name} size={38} />
                <div class="conv-item-body">
                  <div class="conv-item-top">
                    <span class="conv-item-name">{name}</span>
                    <span class="conv-item-time">{relTime(t, last?.created_at ?? s.created_at, now)}</span>
                  </div>
                  <div class="conv-item-bottom">
                    <span class="conv-item-preview">
                      {st.typing.has(s.id) ? <em>{t.t('inbox.typing', { name: '' }).trim()}</em> : last ? (last.sender.type === 'agent' ? '↩ ' : '') + last.text : s.status === 'queued' ? t.t('inbox.waiting', { time: relTime(t, s.created_at, now) }) : s.page_url || s.channel}
                    </span>
                    {st.fresh.has(s.id) ? <span class="pill">{t.t('inbox.new_badge')}</span> : null}
                    {unread ? <span class="unread-badge">{unread}</span> : null}
                    {s.csat ? <Stars score={s.csat.score} size={11} /> : null}
                  </div>
                </div>
              </a>
            );
          })}
        </div>
      </section>
      {id ? (
        <Conversation sessionId={id} user={user} mode="inbox" />
      ) : (
        <div class="conv-placeholder">
          <Empty icon="chat" title={t.t('inbox.pick')}>
            {t.t('inbox.pick_hint')}
          </Empty>
          <div class="placeholder-hint">
            <Icon name="bell" size={14} /> {st.conn === 'open' ? t.t('inbox.empty_mine_online') : ''}
          </div>
        </div>
      )}
    </div>
  );
}

function mergeById(a: Session[], b: Session[]): Session[] {
  const m = new Map<string, Session>();
  for (const s of b) m.set(s.id, s);
  for (const s of a) m.set(s.id, { ...m.get(s.id), ...s });
  return [...m.values()];
}
