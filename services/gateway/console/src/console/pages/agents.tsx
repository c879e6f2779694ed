// Admin: agents — list, create, edit (role, groups, capacity, disabled), bulk import.

import { useState } from 'preact/hooks';
import type { Role, User } from '../../shared/types';
import { ApiError } from '../../shared/api';
import { errorMessage, toFormErrors, type FormErrors } from '../../shared/forms';
import { api, fmtTime, locale, toast, useStore, useT } from '../core';
import { Avatar, Button, Empty, Field, FormError, LoadError, Modal, PageHead, useLoad } from '../ui';

const ROLES: Role[] = ['agent', 'supervisor', 'qa', 'admin'];

function splitGroups(s: string): string[] {
  return s
    .split(/[,;]/)
    .map((x) => x.trim())
    .filter(Boolean);
}

export function AgentsPage() {
  const t = useT();
  const l = useStore(locale);
  const list = useLoad(() => api.get<{ agents: User[] }>('/api/v1/agents').then((r) => r.agents));
  const [dialog, setDialog] = useState<null | 'create' | 'import' | User>(null);
  return (
    <div class="page">
      <PageHead
        title={t.t('agents.title')}
        subtitle={t.t('agents.subtitle')}
        actions={
          <>
            <Button icon="upload" onClick={() => setDialog('import')} data-testid="import-agents">
              {t.t('agents.import')}
            </Button>
            <Button variant="primary" icon="plus" onClick={() => setDialog('create')} data-testid="add-agent">
              {t.t('agents.add')}
            </Button>
          </>
        }
      />
      {list.error ? <LoadError error={errorMessage(list.error, t)} onRetry={list.reload} /> : null}
      <div class="card flush">
        {list.data && list.data.length === 0 ? <Empty icon="users" title={t.t('agents.empty')} /> : null}
        {list.data && list.data.length ? (
          <table class="table" data-testid="agents-table">
            <thead>
              <tr>
                <th>{t.t('agents.name')}</th>
                <th>{t.t('agents.role')}</th>
                <th>{t.t('agents.groups')}</th>
                <th class="right">{t.t('agents.capacity')}</th>
                <th>{t.t('agents.status')}</th>
                <th>{t.t('keys.created')}</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.map((u) => (
                <tr class={u.disabled ? 'dim' : ''}>
                  <td>
                    <div class="cell-user">
                      <Avatar name={u.name} size={30} />
                      <div>
                        <div class="strong">{u.name}</div>
                        <div class="muted small">{u.email}</div>
                      </div>
                    </div>
                  </td>
                  <td>
                    <span class={`chip chip-role-${u.role}`}>{t.has(`role.${u.role}`) ? t.t(`role.${u.role}`) : u.role}</span>
                  </td>
                  <td>{u.groups.length ? u.groups.map((g) => <span class="chip">{g}</span>) : <span class="muted">—</span>}</td>
                  <td class="right">{u.max_sessions}</td>
                  <td>{u.disabled ? <span class="chip chip-closed">{t.t('agents.disabled')}</span> : <span class="chip chip-assigned">{t.t('agents.active')}</span>}</td>
                  <td class="muted">{fmtTime(u.created_at, l)}</td>
                  <td class="right">
                    <Button small variant="ghost" onClick={() => setDialog(u)}>
                      {t.t('common.edit')}
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
      {dialog === 'create' ? <AgentDialog onClose={() => setDialog(null)} onDone={list.reload} /> : null}
      {dialog === 'import' ? <ImportDialog onClose={() => setDialog(null)} onDone={list.reload} /> : null}
      {dialog && typeof dialog === 'object' ? <AgentDialog agent={dialog} onClose={() => setDialog(null)} onDone={list.reload} /> : null}
    </div>
  );
}

function AgentDialog({ agent, onClose, onDone }: { agent?: User; onClose: () => void; onDone: () => void }) {
  const t = useT();
  const [f, setF] = useState({
    name: agent?.name ?? '',
    email: agent?.email ?? '',
    password: '',
    role: (agent?.role ?? 'agent') as Role,
    max_sessions: String(agent?.max_sessions ?? 5),
    groups: (agent?.groups ?? []).join(', '),
    disabled: agent?.disabled ?? false,
  });
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  // Built-in roles plus any custom ones the installation defines.
  const roles = useLoad(() => api.get<{ roles: { name: string }[] }>('/api/v1/roles').then((r) => r.roles.map((x) => x.name)), []);
  const roleNames = [...new Set([...ROLES, ...(roles.data ?? [])])];
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setErrs({ fields: {} });
    const max = Number(f.max_sessions);
    try {
      if (agent) {
        await api.patch(`/api/v1/agents/${agent.id}`, { name: f.name, role: f.role, max_sessions: max, groups: splitGroups(f.groups), disabled: f.disabled });
        toast(t.t('agents.updated'));
      } else {
        await api.post('/api/v1/agents', { name: f.name, email: f.email, password: f.password, role: f.role, max_sessions: max, groups: splitGroups(f.groups) });
        toast(t.t('agents.created', { name: f.name }));
      }
      onDone();
      onClose();
    } catch (err) {
      setErrs(toFormErrors(err, ['name', 'email', 'password', 'role', 'max_sessions', 'groups'], t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal
      title={agent ? agent.name : t.t('agents.add')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t.t('common.cancel')}</Button>
          <Button variant="primary" busy={busy} onClick={() => submit()} data-testid="agent-save">
            {agent ? t.t('common.save') : t.t('common.create')}
          </Button>
        </>
      }
    >
      <form onSubmit={submit} noValidate data-testid="agent-form">
        <FormError text={errs.form} />
        <div class="form-grid">
          <Field label={t.t('agents.name')} error={errs.fields.name} id="agent-name">
            <input id="agent-name" name="name" value={f.name} onInput={set('name')} />
          </Field>
          <Field label={t.t('agents.email')} error={errs.fields.email} id="agent-email">
            <input id="agent-email" name="email" type="email" value={f.email} onInput={set('email')} disabled={!!agent} />
          </Field>
          {!agent ? (
            <Field label={t.t('agents.password')} error={errs.fields.password} hint={t.t('setup.password_hint')} id="agent-password">
              <input id="agent-password" name="password" type="password" value={f.password} onInput={set('password')} autoComplete="new-password" />
            </Field>
          ) : null}
          <Field label={t.t('agents.role')} error={errs.fields.role} id="agent-role">
            <select id="agent-role" name="role" value={f.role} onChange={set('role')}>
              {roleNames.map((r) => (
                <option value={r}>{t.has(`role.${r}`) ? t.t(`role.${r}`) : r}</option>
              ))}
            </select>
          </Field>
          <Field label={t.t('agents.capacity')} error={errs.fields.max_sessions} id="agent-max">
            <input id="agent-max" name="max_sessions" type="number" min={1} max={100} value={f.max_sessions} onInput={set('max_sessions')} />
          </Field>
          <Field label={t.t('agents.groups')} error={errs.fields.groups} hint={t.t('agents.groups_hint')} id="agent-groups">
            <input id="agent-groups" name="groups" value={f.groups} onInput={set('groups')} placeholder="premium, default_group" />
          </Field>
          {agent ? (
            <label class="check">
              <input type="checkbox" checked={f.disabled} onChange={(e) => setF({ ...f, disabled: (e.target as HTMLInputElement).checked })} /> {t.t('agents.disable')}
            </label>
          ) : null}
        </div>
        <button type="submit" hidden />
      </form>
    </Modal>
  );
}

interface ImportResult {
  row: number;
  email: string;
  id?: string;
  error?: { code: string; message: string; field?: string } | string;
}

function ImportDialog({ onClose, onDone }: { onClose: () => void; onDone: () => void }) {
  const t = useT();
  const [csv, setCsv] = useState('email,name,password,role,max_sessions,groups\n');
  const [err, setErr] = useState('');
  const [results, setResults] = useState<ImportResult[] | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setErr('');
    setResults(null);
    try {
      const r = await api.post<{ created: number; results: ImportResult[] }>('/api/v1/agents/import', undefined, { raw: { body: csv, contentType: 'text/csv' } });
      toast(t.t('agents.import_done', { n: r.created }));
      onDone();
      onClose();
    } catch (e) {
      setErr(errorMessage(e, t));
      if (e instanceof ApiError && Array.isArray(e.body?.results)) setResults(e.body.results as ImportResult[]);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal
      wide
      title={t.t('agents.import_title')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t.t('common.cancel')}</Button>
          <Button variant="primary" busy={busy} onClick={submit} data-testid="import-submit">
            {t.t('agents.import_submit')}
          </Button>
        </>
      }
    >
      <p class="muted small">{t.t('agents.import_hint')}</p>
      <FormError text={err} />
      <div class="file-row">
        <label class="btn btn-secondary btn-sm">
          {t.t('agents.import_file')}
          <input
            type="file"
            accept=".csv,text/csv"
            hidden
            onChange={async (e) => {
              const file = (e.target as HTMLInputElement).files?.[0];
              if (file) setCsv(await file.text());
            }}
          />
        </label>
      </div>
      <textarea class="mono code-input" rows={10} value={csv} onInput={(e) => setCsv((e.target as HTMLTextAreaElement).value)} data-testid="import-csv" placeholder="email,name,password,role,max_sessions,groups" />
      {results ? (
        <ul class="import-results">
          {results
            .filter((r) => r.error)
            .map((r) => (
              <li>
                <strong>{t.t('agents.import_row', { row: r.row })}</strong> {r.email}: {typeof r.error === 'string' ? r.error : r.error?.message}
              </li>
            ))}
        </ul>
      ) : null}
    </Modal>
  );
}
