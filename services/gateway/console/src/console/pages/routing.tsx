// Admin: routing rules, edited as rows; the server's CEL errors appear under the
// offending rule ("routing_rules[1].condition").

import { useEffect, useState } from 'preact/hooks';
import { errorMessage, ruleErrors, type RuleErrors } from '../../shared/forms';
import { api, toast, useT } from '../core';
import { Button, Empty, FormError, Icon, LoadError, PageHead, useLoad } from '../ui';

interface Rule {
  condition: string;
  action: string;
}

export function RoutingPage() {
  const t = useT();
  const loaded = useLoad(() => api.get<{ routing_rules: Rule[] }>('/api/v1/routing/rules').then((r) => r.routing_rules ?? []));
  const [rules, setRules] = useState<Rule[]>([]);
  const [errs, setErrs] = useState<RuleErrors>({ rows: {} });
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    if (loaded.data) setRules(loaded.data.map((r) => ({ ...r })));
  }, [loaded.data]);

  const update = (i: number, k: keyof Rule, v: string) => {
    const next = rules.slice();
    next[i] = { ...next[i], [k]: v };
    setRules(next);
    if (errs.rows[i]) {
      const rows = { ...errs.rows };
      delete rows[i];
      setErrs({ ...errs, rows });
    }
  };
  const move = (i: number, d: number) => {
    const j = i + d;
    if (j < 0 || j >= rules.length) return;
    const next = rules.slice();
    [next[i], next[j]] = [next[j], next[i]];
    setRules(next);
  };
  const save = async () => {
    setBusy(true);
    setErrs({ rows: {} });
    try {
      const r = await api.put<{ routing_rules: Rule[] }>('/api/v1/routing/rules', { routing_rules: rules });
      setRules(r.routing_rules ?? rules);
      toast(t.t('routing.saved'));
    } catch (e) {
      setErrs(ruleErrors(e, errorMessage(e, t)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="page">
      <PageHead
        title={t.t('routing.title')}
        subtitle={t.t('routing.subtitle')}
        actions={
          <Button variant="primary" icon="check" busy={busy} onClick={save} disabled={!!loaded.error} data-testid="save-rules">
            {t.t('common.save')}
          </Button>
        }
      />
      {loaded.error ? <LoadError error={errorMessage(loaded.error, t)} onRetry={loaded.reload} /> : null}
      <FormError text={errs.form} />
      <div class="card flush">
        {rules.length === 0 && !loaded.loading ? <Empty icon="route" title={t.t('routing.empty')} /> : null}
        <ol class="rules" data-testid="rules">
          {rules.map((r, i) => {
            const e = errs.rows[i] ?? {};
            return (
              <li class={`rule${e.condition || e.action || e.row ? ' has-error' : ''}`} data-testid="rule">
                <span class="rule-n">{i + 1}</span>
                <div class="rule-fields">
                  <label>
                    <span class="rule-label">{t.t('routing.condition')}</span>
                    <input class={`mono${e.condition ? ' invalid' : ''}`} value={r.condition} onInput={(ev) => update(i, 'condition', (ev.target as HTMLInputElement).value)} placeholder="user_level == 'VIP'" data-testid="rule-condition" />
                    {e.condition ? (
                      <div class="field-error" role="alert" data-testid="rule-condition-error">
                        <Icon name="alert" size={13} /> {e.condition}
                      </div>
                    ) : null}
                  </label>
                  <span class="rule-arrow">→</span>
                  <label>
                    <span class="rule-label">{t.t('routing.action')}</span>
                    <input class={`mono${e.action ? ' invalid' : ''}`} value={r.action} onInput={(ev) => update(i, 'action', (ev.target as HTMLInputElement).value)} placeholder="assign_to_group('premium')" data-testid="rule-action" />
                    {e.action ? (
                      <div class="field-error" role="alert" data-testid="rule-action-error">
                        <Icon name="alert" size={13} /> {e.action}
                      </div>
                    ) : null}
                  </label>
                  {e.row ? <div class="field-error">{e.row}</div> : null}
                </div>
                <div class="rule-tools">
                  <button class="icon-btn" title={t.t('routing.move_up')} onClick={() => move(i, -1)} disabled={i === 0}>
                    <Icon name="up" size={16} />
                  </button>
                  <button class="icon-btn" title={t.t('routing.move_down')} onClick={() => move(i, 1)} disabled={i === rules.length - 1}>
                    <Icon name="down" size={16} />
                  </button>
                  <button class="icon-btn danger" title={t.t('common.remove')} onClick={() => setRules(rules.filter((_, j) => j !== i))}>
                    <Icon name="x" size={16} />
                  </button>
                </div>
              </li>
            );
          })}
        </ol>
        <div class="rules-foot">
          <Button small icon="plus" onClick={() => setRules([...rules, { condition: 'true', action: "round_robin('default_group')" }])} data-testid="add-rule">
            {t.t('routing.add')}
          </Button>
          <span class="muted small">{t.t('routing.help')}</span>
        </div>
      </div>
    </div>
  );
}
