// Mapping server validation errors ({"code","message","field"}) onto form fields.

import { ApiError, NETWORK_ERROR } from './api';
import type { Translator } from './i18n';

export interface FormErrors {
  /** Messages keyed by form field name. */
  fields: Record<string, string>;
  /** A message for the whole form (no field, or a field the form does not show). */
  form?: string;
}

/**
 * Translate an error into form errors. `fieldMap` renames server fields to form
 * fields (e.g. "admin.email" → "email"); a server field the form does not know
 * becomes the form-level message. Messages are localised by code when the
 * dictionary has "error.<code>", otherwise the server's own message is shown.
 */
export function toFormErrors(err: unknown, known: readonly string[], t?: Translator, fieldMap: Record<string, string> = {}): FormErrors {
  if (!(err instanceof ApiError)) {
    const msg = err instanceof Error ? err.message : String(err);
    return { fields: {}, form: msg };
  }
  const msg = errorMessage(err, t);
  if (err.field) {
    const f = fieldMap[err.field] ?? err.field;
    if (known.includes(f)) return { fields: { [f]: msg } };
  }
  return { fields: {}, form: msg };
}

/** A person-readable message for an error, localised by its code when possible. */
export function errorMessage(err: unknown, t?: Translator): string {
  if (err instanceof ApiError) {
    if (t && t.has(`error.${err.code}`)) return t.t(`error.${err.code}`);
    if (err.code === NETWORK_ERROR && t) return t.t('error.network_error');
    return err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

export interface IndexedField {
  list: string;
  index: number;
  field: string;
}

/** Parse "routing_rules[1].condition" into {list:"routing_rules", index:1, field:"condition"}. */
export function parseIndexedField(field: string | undefined): IndexedField | null {
  if (!field) return null;
  const m = /^([a-z_][\w.]*)\[(\d+)\](?:\.(.+))?$/i.exec(field);
  if (!m) return null;
  return { list: m[1], index: Number(m[2]), field: m[3] ?? '' };
}

export interface RuleErrors {
  rows: Record<number, { condition?: string; action?: string; row?: string }>;
  form?: string;
}

/** Place a routing-rules error on the rule row and field it names. */
export function ruleErrors(err: unknown, message: string): RuleErrors {
  if (err instanceof ApiError) {
    const f = parseIndexedField(err.field);
    if (f && f.list === 'routing_rules') {
      const key = f.field === 'condition' || f.field === 'action' ? f.field : 'row';
      return { rows: { [f.index]: { [key]: message } } };
    }
  }
  return { rows: {}, form: message };
}
