// Admin: the audit log, filtered and paged by cursor.

import { useEffect, useState } from 'preact/hooks';
import { errorMessage } from '../../shared/forms';
import { api, fmtTime, locale, useStore, useT } from '../core';
import { Button, Empty, LoadError, PageHead, Spinner } from '../ui';

interface Entry {
  seq: number;
  time: string;
  actor: { id: string; type: string; name?: string; email?: string };
  action: string;
  target: { type: string; id: string };
  result: string;
  source_ip: string;
  summary?: string;
}

interface Filters {
  actor: string;
  action: string;
  from: string;
  to: string;
}

function toRFC3339(local: string): string | undefined {
  return local ? new Date(local).toISOString() : undefined;
}

export function AuditPage() {
  const t = useT();
  const l = useStore(locale);
  const [filters, setFilters] = useState<Filters>({ actor: '', action: '', from: '', to: '' });
  const [applied, setApplied] = useState<Filters>(filters);
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [cursor, setCursor] = useState<string>('');
  const [err, setErr] = useState('');
  const [busy, setBusy] = useState(false);

  const load = async (f: Filters, after?: string) => {
    setBusy(true);
    setErr('');
    try {
      const r = await api.get<{ entries: Entry[]; next_cursor?: string }>('/api/v1/audit_logs', {
        actor: f.actor || undefined,
        action: f.action || undefined,
        from: toRFC3339(f.from),
        to: toRFC3339(f.to),
        cursor: after,
        limit: 50,
      });
      setEntries((prev) => (after && prev ? [...prev, ...r.entries] : r.entries));
      setCursor(r.next_cursor ?? '');
    } catch (e) {
      setErr(errorMessage(e, t));
      if (!after) setEntries(null);
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    void load(applied);
  }, [applied]);
  const set = (k: keyof Filters) => (e: Event) => setFilters({ ...filters, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="page">
      <PageHead title={t.t('audit.title')} subtitle={t.t('audit.subtitle')} />
      <form
        class="card filters"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied({ ...filters });
        }}
      >
        <label>
          {t.t('audit.actor')}
          <input value={filters.actor} onInput={set('actor')} placeholder="user id" />
        </label>
        <label>
          {t.t('audit.action')}
          <input value={filters.action} onInput={set('action')} placeholder="agent.create" />
        </label>
        <label>
          {t.t('audit.from')}
          <input type="datetime-local" value={filters.from} onInput={set('from')} />
        </label>
        <label>
          {t.t('audit.to')}
          <input type="datetime-local" value={filters.to} onInput={set('to')} />
        </label>
        <Button type="submit" variant="primary" icon="refresh">
          {t.t('common.apply')}
        </Button>
      </form>
      {err ? <LoadError error={err} onRetry={() => load(applied)} /> : null}
      <div class="card flush">
        {entries === null && busy ? <Spinner /> : null}
        {entries && entries.length === 0 ? <Empty icon="list" title={t.t('audit.empty')} /> : null}
        {entries && entries.length ? (
          <table class="table" data-testid="audit-table">
            <thead>
              <tr>
                <th>{t.t('audit.time')}</th>
                <th>{t.t('audit.actor')}</th>
                <th>{t.t('audit.action')}</th>
                <th>{t.t('audit.target')}</th>
                <th>{t.t('audit.result')}</th>
                <th>{t.t('audit.ip')}</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr>
                  <td class="muted nowrap">{fmtTime(e.time, l)}</td>
                  <td>
                    <div>{e.actor.name || e.actor.email || e.actor.id}</div>
                    <div class="muted small">{e.actor.type}</div>
                  </td>
                  <td>
                    <code>{e.action}</code>
                    {e.summary ? <div class="muted small">{e.summary}</div> : null}
                  </td>
                  <td class="muted small mono">
                    {e.target?.type} {e.target?.id}
                  </td>
                  <td>
                    <span class={`chip ${e.result === 'success' || e.result === 'ok' ? 'chip-assigned' : 'chip-closed'}`}>{e.result}</span>
                  </td>
                  <td class="muted mono small">{e.source_ip}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {cursor ? (
          <div class="more-row">
            <Button busy={busy} onClick={() => load(applied, cursor)}>
              {t.t('common.more')}
            </Button>
          </div>
        ) : null}
      </div>
    </div>
  );
}
