// Supervisor view: the queue, every active conversation, and each agent's status
// and load, refreshed every few seconds.

import { useEffect, useState } from 'preact/hooks';
import type { Session, User } from '../../shared/types';
import { api, customerName, navigate, relTime, useT } from '../core';
import { Avatar, Button, Empty, Icon, LoadError, PageHead, Stars } from '../ui';
import { errorMessage } from '../../shared/forms';
import { Conversation, StatusChip } from './conversation';

interface AgentState {
  agent_id: string;
  status: string;
  current_session_count: number;
}

interface Snapshot {
  queued: Session[];
  active: Session[];
  closed: Session[];
  agents: User[];
  states: Map<string, AgentState>;
}

async function snapshot(): Promise<Snapshot> {
  const [q, a, c, ag] = await Promise.all([
    api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'queued', limit: 200 }),
    api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'assigned', limit: 200 }),
    api.get<{ sessions: Session[] }>('/api/v1/sessions', { status: 'closed', limit: 50 }),
    api.get<{ agents: User[] }>('/api/v1/agents'),
  ]);
  const takers = ag.agents.filter((u) => u.role !== 'qa' && !u.disabled);
  const states = new Map<string, AgentState>();
  await Promise.all(
    takers.map((u) =>
      api.get<AgentState>('/api/v1/agents/online_status', { agent_id: u.id }).then(
        (s) => states.set(u.id, s),
        () => undefined,
      ),
    ),
  );
  return { queued: q.sessions, active: a.sessions, closed: c.sessions, agents: takers, states };
}

export function MonitorPage({ user, id }: { user: User; id?: string }) {
  const t = useT();
  const [snap, setSnap] = useState<Snapshot | null>(null);
  const [err, setErr] = useState('');
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (id) return;
    let stop = false;
    const load = () =>
      snapshot().then(
        (s) => {
          if (stop) return;
          setSnap(s);
          setErr('');
          setNow(Date.now());
        },
        (e) => !stop && setErr(errorMessage(e, t)),
      );
    void load();
    const timer = setInterval(load, 4000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [id]);

  if (id)
    return (
      <div class="page-conv">
        <div class="back-row">
          <Button small icon="up" onClick={() => navigate('/monitor')}>
            {t.t('nav.monitor')}
          </Button>
        </div>
        <Conversation sessionId={id} user={user} mode="monitor" />
      </div>
    );
  if (err && !snap) return <LoadError error={err} onRetry={() => setErr('')} />;
  const names = new Map((snap?.agents ?? []).map((a) => [a.id, a.name]));
  const online = snap ? [...snap.states.values()].filter((s) => s.status === 'online').length : 0;
  const rated = (snap?.closed ?? []).filter((s) => s.csat);
  const avg = rated.length ? rated.reduce((n, s) => n + (s.csat?.score ?? 0), 0) / rated.length : 0;
  const open = (s: Session) => navigate(`/monitor/${s.id}`);
  return (
    <div class="page">
      <PageHead title={t.t('monitor.title')} />
      <div class="stats">
        <Stat label={t.t('monitor.stat.queued')} value={snap?.queued.length} warn={(snap?.queued.length ?? 0) > 0} />
        <Stat label={t.t('monitor.stat.active')} value={snap?.active.length} />
        <Stat label={t.t('monitor.stat.online')} value={snap ? `${online} / ${snap.agents.length}` : undefined} />
        <Stat label={t.t('monitor.stat.csat')} value={rated.length ? avg.toFixed(1) : '—'} />
      </div>
      <div class="grid-2">
        <div>
          <div class="card">
            <h3>
              {t.t('monitor.queue')} <span class="count warn">{snap?.queued.length ?? 0}</span>
            </h3>
            {snap && snap.queued.length === 0 ? <Empty icon="check" title={t.t('monitor.empty_queue')} /> : null}
            <SessionTable rows={snap?.queued ?? []} names={names} now={now} onOpen={open} queue />
          </div>
          <div class="card">
            <h3>{t.t('monitor.active')}</h3>
            {snap && snap.active.length === 0 ? <Empty icon="chat" title={t.t('monitor.empty_active')} /> : null}
            <SessionTable rows={snap?.active ?? []} names={names} now={now} onOpen={open} />
          </div>
          <div class="card">
            <h3>{t.t('monitor.closed')}</h3>
            <SessionTable rows={snap?.closed ?? []} names={names} now={now} onOpen={open} />
          </div>
        </div>
        <div class="card">
          <h3>{t.t('monitor.agents')}</h3>
          <table class="table">
            <tbody>
              {(snap?.agents ?? []).map((a) => {
                const s = snap!.states.get(a.id);
                const load = s?.current_session_count ?? 0;
                return (
                  <tr>
                    <td>
                      <div class="cell-user">
                        <Avatar name={a.name} size={28} />
                        <div>
                          <div>{a.name}</div>
                          <div class="muted small">{a.groups.join(', ')}</div>
                        </div>
                      </div>
                    </td>
                    <td>
                      <span class={`presence p-${s?.status ?? 'offline'}`}>
                        <span class="dot" /> {t.t(`status.${s?.status ?? 'offline'}`)}
                      </span>
                    </td>
                    <td class="load-cell">
                      <div class="bar">
                        <span style={{ width: `${Math.min(100, (load / Math.max(1, a.max_sessions)) * 100)}%` }} />
                      </div>
                      <span class="muted small">
                        {load}/{a.max_sessions}
                      </span>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </div>
    </div>
  );
}

function Stat({ label, value, warn }: { label: string; value?: string | number; warn?: boolean }) {
  return (
    <div class={`stat${warn ? ' warn' : ''}`}>
      <div class="stat-label">{label}</div>
      <div class="stat-value">{value ?? '—'}</div>
    </div>
  );
}

export function SessionTable({ rows, names, now, onOpen, queue }: { rows: Session[]; names: Map<string, string>; now: number; onOpen: (s: Session) => void; queue?: boolean }) {
  const t = useT();
  if (!rows.length) return null;
  return (
    <table class="table clickable">
      <tbody>
        {rows.map((s) => (
          <tr onClick={() => onOpen(s)} data-testid="session-row" data-session={s.id}>
            <td>
              <div class="cell-user">
                <Avatar name={customerName(t, s)} size={28} />
                <div>
                  <div>{customerName(t, s)}</div>
                  <div class="muted small ellipsis">{s.page_url || s.channel}</div>
                </div>
              </div>
            </td>
            <td>{queue ? <span class="muted">#{s.queue_position || '—'}</span> : <StatusChip status={s.status} />}</td>
            <td class="muted">{queue ? t.t('inbox.waiting', { time: relTime(t, s.created_at, now) }) : names.get(s.agent_id) ?? '—'}</td>
            <td class="right">{s.csat ? <Stars score={s.csat.score} /> : s.group ? <span class="chip">{s.group}</span> : null}</td>
            <td class="right">
              <Icon name="down" size={14} class="rot-270" />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
