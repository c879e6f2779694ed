// Admin: groups (技能组).

import { useState } from 'preact/hooks';
import type { User } from '../../shared/types';
import { errorMessage, toFormErrors, type FormErrors } from '../../shared/forms';
import { api, toast, useT } from '../core';
import { Avatar, Button, Empty, Field, FormError, LoadError, PageHead, useLoad } from '../ui';

interface Group {
  name: string;
  [k: string]: unknown;
}

export function GroupsPage() {
  const t = useT();
  const groups = useLoad(() => api.get<{ groups: Group[] }>('/api/v1/groups').then((r) => r.groups));
  const agents = useLoad(() => api.get<{ agents: User[] }>('/api/v1/agents').then((r) => r.agents));
  const [name, setName] = useState('');
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const add = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrs({ fields: {} });
    try {
      await api.post('/api/v1/groups', { name: name.trim() });
      toast(t.t('groups.created', { name: name.trim() }));
      setName('');
      groups.reload();
    } catch (err) {
      setErrs(toFormErrors(err, ['name'], t));
    } finally {
      setBusy(false);
    }
  };
  const members = (g: string) => (agents.data ?? []).filter((a) => a.groups.includes(g));
  return (
    <div class="page">
      <PageHead title={t.t('groups.title')} subtitle={t.t('groups.subtitle')} />
      <form class="card inline-form" onSubmit={add} noValidate data-testid="group-form">
        <Field label={t.t('groups.name')} error={errs.fields.name} hint={t.t('groups.name_hint')} id="group-name">
          <input id="group-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="after_sales" />
        </Field>
        <Button variant="primary" type="submit" icon="plus" busy={busy} disabled={!name.trim()}>
          {t.t('groups.add')}
        </Button>
        <FormError text={errs.form} />
      </form>
      {groups.error ? <LoadError error={errorMessage(groups.error, t)} onRetry={groups.reload} /> : null}
      {groups.data && groups.data.length === 0 ? <Empty icon="layers" title={t.t('groups.empty')} /> : null}
      <div class="cards">
        {(groups.data ?? []).map((g) => (
          <div class="card group-card">
            <div class="group-name">{g.name}</div>
            <div class="muted small">
              {t.t('groups.members')}: {members(g.name).length}
            </div>
            <div class="avatars">
              {members(g.name)
                .slice(0, 8)
                .map((a) => (
                  <span title={a.name}>
                    <Avatar name={a.name} size={26} />
                  </span>
                ))}
            </div>
          </div>
        ))}
      </div>
    </div>
  );
}
