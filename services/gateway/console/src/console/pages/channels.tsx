// Admin: channels. A web channel's widget settings with the embed snippet and a live
// preview rendered by the real widget code.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { Channel, WebSettings } from '../../shared/types';
import { ApiError } from '../../shared/api';
import { errorMessage, parseIndexedField, toFormErrors, type FormErrors } from '../../shared/forms';
import { api, fmtTime, locale, navigate, toast, useStore, useT } from '../core';
import { Button, CopyButton, Empty, Field, FormError, Icon, LoadError, PageHead, Spinner, useLoad } from '../ui';
import { HelmdeskWidget } from '../../widget/widget';

export function ChannelsPage({ id }: { id?: string }) {
  const t = useT();
  const l = useStore(locale);
  const list = useLoad(() => api.get<{ channels: Channel[] }>('/api/v1/channels').then((r) => r.channels), [id]);
  const [busy, setBusy] = useState(false);
  const create = async () => {
    setBusy(true);
    try {
      const n = (list.data?.length ?? 0) + 1;
      const ch = await api.post<Channel>('/api/v1/channels', { type: 'web', name: n > 1 ? `${t.t('channels.default_name')} ${n}` : t.t('channels.default_name') });
      toast(t.t('channels.created'));
      navigate(`/admin/channels/${ch.id}`);
    } catch (e) {
      toast(errorMessage(e, t), 'error');
    } finally {
      setBusy(false);
    }
  };
  if (id) {
    const ch = list.data?.find((c) => c.id === id);
    if (list.error) return <LoadError error={errorMessage(list.error, t)} onRetry={list.reload} />;
    if (!ch) return list.loading ? <Spinner /> : <Empty icon="globe" title="404" />;
    return <ChannelEditor channel={ch} onSaved={list.reload} />;
  }
  return (
    <div class="page">
      <PageHead
        title={t.t('channels.title')}
        subtitle={t.t('channels.subtitle')}
        actions={
          <Button variant="primary" icon="plus" busy={busy} onClick={create} data-testid="add-channel">
            {t.t('channels.add')}
          </Button>
        }
      />
      {list.error ? <LoadError error={errorMessage(list.error, t)} onRetry={list.reload} /> : null}
      {list.data && list.data.length === 0 ? <Empty icon="globe" title={t.t('channels.empty')} /> : null}
      <div class="cards">
        {(list.data ?? []).map((c) => (
          <a
            href={`/admin/channels/${c.id}`}
            class="card channel-card"
            data-testid="channel-card"
            onClick={(e) => {
              e.preventDefault();
              navigate(`/admin/channels/${c.id}`);
            }}
          >
            <span class="channel-swatch" style={{ background: c.web?.color }}>
              <Icon name="chat" size={18} />
            </span>
            <div>
              <div class="strong">{c.name}</div>
              <div class="muted small">
                {t.t(`channels.type.${c.type}`)} · {fmtTime(c.created_at, l)}
              </div>
              <div class="mono small muted">{c.key}</div>
            </div>
          </a>
        ))}
      </div>
    </div>
  );
}

interface Draft {
  name: string;
  color: string;
  position: 'right' | 'left';
  title: string;
  greeting: string;
  click: boolean;
  auto: string;
  patterns: string;
}

function toDraft(c: Channel): Draft {
  const w = c.web;
  return {
    name: c.name,
    color: w.color,
    position: w.position,
    title: w.title,
    greeting: w.greeting,
    click: w.triggers.click,
    auto: String(w.triggers.auto_open_after_seconds),
    patterns: w.triggers.page_patterns.join('\n'),
  };
}

function draftWeb(d: Draft): WebSettings {
  return {
    color: d.color,
    position: d.position,
    title: d.title,
    greeting: d.greeting,
    triggers: {
      click: d.click,
      auto_open_after_seconds: Number(d.auto) || 0,
      page_patterns: d.patterns
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean),
    },
  };
}

const FIELD_MAP: Record<string, string> = {
  name: 'name',
  'web.color': 'color',
  'web.position': 'position',
  'web.title': 'title',
  'web.greeting': 'greeting',
  'web.triggers': 'triggers',
  'web.triggers.click': 'triggers',
  'web.triggers.auto_open_after_seconds': 'auto',
  'web.triggers.page_patterns': 'patterns',
};

function ChannelEditor({ channel, onSaved }: { channel: Channel; onSaved: () => void }) {
  const t = useT();
  const l = useStore(locale);
  const [d, setD] = useState<Draft>(toDraft(channel));
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<Channel>(channel);
  const set = (k: keyof Draft) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setD({ ...d, [k]: el.type === 'checkbox' ? el.checked : el.value });
    if (errs.fields[k]) setErrs({ ...errs, fields: { ...errs.fields, [k]: '' } });
  };
  const save = async (e?: Event) => {
    e?.preventDefault();
    setBusy(true);
    setErrs({ fields: {} });
    try {
      const c = await api.patch<Channel>(`/api/v1/channels/${channel.id}`, { name: d.name, web: draftWeb(d) });
      setSaved(c);
      toast(t.t('channels.saved'));
      onSaved();
    } catch (err) {
      let mapped = toFormErrors(err, Object.keys(d).concat('triggers'), t, FIELD_MAP);
      const m = parseIndexedField(err instanceof ApiError ? err.field : undefined);
      if (m && m.list === 'web.triggers.page_patterns') mapped = { fields: { patterns: `${errorMessage(err, t)} (#${m.index + 1})` } };
      setErrs(mapped);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="page">
      <PageHead
        title={
          <>
            <button class="icon-btn back" onClick={() => navigate('/admin/channels')} aria-label="back">
              <Icon name="up" size={16} class="rot-270" />
            </button>{' '}
            {saved.name}
          </>
        }
        subtitle={`${t.t('channels.type.web')} · ${fmtTime(saved.created_at, l)}`}
        actions={
          <Button variant="primary" icon="check" busy={busy} onClick={() => save()} data-testid="save-channel">
            {t.t('common.save')}
          </Button>
        }
      />
      <div class="channel-layout">
        <form class="card" onSubmit={save} noValidate data-testid="channel-form">
          <FormError text={errs.form} />
          <Field label={t.t('channels.name')} error={errs.fields.name} id="ch-name">
            <input id="ch-name" value={d.name} onInput={set('name')} />
          </Field>
          <h3 class="section-title">{t.t('channels.appearance')}</h3>
          <div class="form-grid">
            <Field label={t.t('channels.color')} error={errs.fields.color} id="ch-color">
              <div class="color-input">
                <input type="color" value={/^#[0-9a-f]{6}$/i.test(d.color) ? d.color : '#1f6feb'} onInput={set('color')} aria-label={t.t('channels.color')} />
                <input id="ch-color" class="mono" value={d.color} onInput={set('color')} maxLength={7} />
              </div>
            </Field>
            <Field label={t.t('channels.position')} error={errs.fields.position} id="ch-position">
              <div class="seg">
                {(['right', 'left'] as const).map((p) => (
                  <button type="button" class={d.position === p ? 'on' : ''} onClick={() => setD({ ...d, position: p })}>
                    {t.t(`channels.position.${p}`)}
                  </button>
                ))}
              </div>
            </Field>
          </div>
          <Field label={t.t('channels.widget_title')} error={errs.fields.title} id="ch-title">
            <input id="ch-title" value={d.title} onInput={set('title')} maxLength={60} />
          </Field>
          <Field label={t.t('channels.greeting')} error={errs.fields.greeting} id="ch-greeting">
            <textarea id="ch-greeting" rows={2} value={d.greeting} onInput={set('greeting')} maxLength={500} />
          </Field>
          <h3 class="section-title">{t.t('channels.triggers')}</h3>
          {errs.fields.triggers ? (
            <div class="field-error" role="alert">
              <Icon name="alert" size={13} /> {errs.fields.triggers}
            </div>
          ) : null}
          <label class="check">
            <input type="checkbox" checked={d.click} onChange={set('click')} data-testid="ch-click" /> {t.t('channels.trigger_click')}
          </label>
          <Field label={t.t('channels.trigger_auto')} error={errs.fields.auto} id="ch-auto">
            <input id="ch-auto" type="number" min={0} max={3600} value={d.auto} onInput={set('auto')} class="narrow" />
          </Field>
          <Field label={t.t('channels.trigger_pages')} error={errs.fields.patterns} id="ch-patterns">
            <textarea id="ch-patterns" class="mono" rows={3} value={d.patterns} onInput={set('patterns')} placeholder={'/pricing*\n/checkout'} />
          </Field>
          <button type="submit" hidden />
        </form>
        <div class="channel-side">
          <div class="card">
            <h3 class="section-title">{t.t('channels.embed')}</h3>
            <p class="muted small">{t.t('channels.embed_hint')}</p>
            <pre class="snippet" data-testid="embed-code">{saved.embed_code}</pre>
            <div class="snippet-actions">
              <CopyButton text={saved.embed_code} />
              <span class="muted small">
                {t.t('channels.key')}: <code data-testid="channel-key">{saved.key}</code>
              </span>
            </div>
          </div>
          <div class="card">
            <h3 class="section-title">{t.t('channels.preview')}</h3>
            <Preview channel={saved} web={draftWeb(d)} />
          </div>
        </div>
      </div>
    </div>
  );
}

function Preview({ channel, web }: { channel: Channel; web: WebSettings }) {
  const host = useRef<HTMLDivElement>(null);
  const widget = useRef<HelmdeskWidget | null>(null);
  const l = useStore(locale);
  const safe: WebSettings = { ...web, color: /^#[0-9a-f]{6}$/i.test(web.color) ? web.color : '#1f6feb', title: web.title || ' ' };
  const config = { channel_id: channel.id, name: channel.name, web: safe };
  useEffect(() => {
    if (!host.current) return;
    widget.current = new HelmdeskWidget(host.current, { base: '', channelKey: channel.key, config, visitor: { userId: 'preview', profile: {} }, preview: true, locale: l, storage: null });
    return () => widget.current?.destroy();
  }, [channel.id]);
  useEffect(() => {
    widget.current?.update(config, l);
  }, [JSON.stringify(safe), l]);
  return (
    <div class="preview-frame" data-testid="widget-preview">
      <div class="preview-bar">
        <i />
        <i />
        <i />
        <span>https://www.example.com</span>
      </div>
      <div class="preview-page">
        <div class="sk sk-h" />
        <div class="sk" />
        <div class="sk sk-s" />
        <div ref={host} class="preview-host" />
      </div>
    </div>
  );
}
