// Admin: API keys. The key itself is shown once, on creation.

import { useState } from 'preact/hooks';
import type { Role } from '../../shared/types';
import { errorMessage, toFormErrors, type FormErrors } from '../../shared/forms';
import { api, fmtTime, locale, toast, useStore, useT } from '../core';
import { Button, CopyButton, Empty, Field, FormError, Icon, LoadError, Modal, PageHead, useLoad } from '../ui';

interface ApiKey {
  id: string;
  name: string;
  role: Role;
  created_at: string;
  last_used_at?: string | null;
}

export function ApiKeysPage() {
  const t = useT();
  const l = useStore(locale);
  const list = useLoad(() => api.get<{ api_keys: ApiKey[] }>('/api/v1/api_keys').then((r) => r.api_keys));
  const [creating, setCreating] = useState(false);
  const [shown, setShown] = useState<(ApiKey & { key: string }) | null>(null);
  const del = async (k: ApiKey) => {
    if (!confirm(t.t('keys.delete_confirm', { name: k.name }))) return;
    try {
      await api.del(`/api/v1/api_keys/${k.id}`);
      toast(t.t('keys.deleted'));
      list.reload();
    } catch (e) {
      toast(errorMessage(e, t), 'error');
    }
  };
  return (
    <div class="page">
      <PageHead
        title={t.t('keys.title')}
        subtitle={t.t('keys.subtitle')}
        actions={
          <Button variant="primary" icon="plus" onClick={() => setCreating(true)} disabled={!!list.error}>
            {t.t('keys.add')}
          </Button>
        }
      />
      {list.error ? <LoadError error={errorMessage(list.error, t)} onRetry={list.reload} /> : null}
      {shown ? (
        <div class="card key-shown" data-testid="new-key">
          <div class="strong">
            <Icon name="key" size={16} /> {shown.name}
          </div>
          <p class="warn-text">{t.t('keys.shown_once')}</p>
          <div class="snippet-actions">
            <code class="snippet">{shown.key}</code>
            <CopyButton text={shown.key} />
          </div>
        </div>
      ) : null}
      <div class="card flush">
        {list.data && list.data.length === 0 ? <Empty icon="key" title={t.t('keys.empty')} /> : null}
        {list.data && list.data.length ? (
          <table class="table">
            <thead>
              <tr>
                <th>{t.t('keys.name')}</th>
                <th>{t.t('keys.role')}</th>
                <th>{t.t('keys.created')}</th>
                <th>{t.t('keys.last_used')}</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {list.data.map((k) => (
                <tr>
                  <td class="strong">{k.name}</td>
                  <td>
                    <span class={`chip chip-role-${k.role}`}>{t.t(`role.${k.role}`)}</span>
                  </td>
                  <td class="muted">{fmtTime(k.created_at, l)}</td>
                  <td class="muted">{k.last_used_at ? fmtTime(k.last_used_at, l) : t.t('keys.never')}</td>
                  <td class="right">
                    <Button small variant="ghost" onClick={() => del(k)}>
                      {t.t('common.delete')}
                    </Button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
      </div>
      {creating ? (
        <CreateKey
          onClose={() => setCreating(false)}
          onDone={(k) => {
            setShown(k);
            list.reload();
          }}
        />
      ) : null}
    </div>
  );
}

function CreateKey({ onClose, onDone }: { onClose: () => void; onDone: (k: ApiKey & { key: string }) => void }) {
  const t = useT();
  const [name, setName] = useState('');
  const [role, setRole] = useState<Role>('agent');
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const submit = async () => {
    setBusy(true);
    setErrs({ fields: {} });
    try {
      const k = await api.post<ApiKey & { key: string }>('/api/v1/api_keys', { name, role });
      onDone(k);
      onClose();
    } catch (e) {
      setErrs(toFormErrors(e, ['name', 'role'], t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Modal
      title={t.t('keys.add')}
      onClose={onClose}
      footer={
        <>
          <Button onClick={onClose}>{t.t('common.cancel')}</Button>
          <Button variant="primary" busy={busy} onClick={submit}>
            {t.t('common.create')}
          </Button>
        </>
      }
    >
      <FormError text={errs.form} />
      <Field label={t.t('keys.name')} error={errs.fields.name} id="key-name">
        <input id="key-name" value={name} onInput={(e) => setName((e.target as HTMLInputElement).value)} placeholder="CRM sync" />
      </Field>
      <Field label={t.t('keys.role')} error={errs.fields.role} id="key-role">
        <select id="key-role" value={role} onChange={(e) => setRole((e.target as HTMLSelectElement).value as Role)}>
          {(['agent', 'supervisor', 'qa', 'admin'] as Role[]).map((r) => (
            <option value={r}>{t.t(`role.${r}`)}</option>
          ))}
        </select>
      </Field>
    </Modal>
  );
}
