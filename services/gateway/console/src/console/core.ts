// Console-wide state: the signed-in user and token, the API client, the locale, the
// current route and toasts. Small observable stores read with hooks.

import { useEffect, useState } from 'preact/hooks';
import { ApiClient } from '../shared/api';
import { pickLocale, translator, type Locale, type Translator } from '../shared/i18n';
import type { User } from '../shared/types';
import { consoleDicts } from './messages';

type Listener = () => void;

export class Store<T> {
  private v: T;
  private readonly ls = new Set<Listener>();
  constructor(v: T) {
    this.v = v;
  }
  get(): T {
    return this.v;
  }
  set(v: T): void {
    this.v = v;
    for (const l of [...this.ls]) l();
  }
  subscribe(l: Listener): () => void {
    this.ls.add(l);
    return () => this.ls.delete(l);
  }
}

export function useStore<T>(s: Store<T>): T {
  const [, force] = useState(0);
  useEffect(() => s.subscribe(() => force((n) => n + 1)), [s]);
  return s.get();
}

// --- auth ---

export interface Auth {
  token: string;
  user: User;
  expires_at?: string;
}

const AUTH_KEY = 'helmdesk.auth';

function loadAuth(): Auth | null {
  try {
    const a = JSON.parse(localStorage.getItem(AUTH_KEY) || 'null') as Auth | null;
    if (a && a.expires_at && Date.parse(a.expires_at) < Date.now()) return null;
    return a;
  } catch {
    return null;
  }
}

export const auth = new Store<Auth | null>(loadAuth());
export const sessionExpired = new Store(false);

export function setAuth(a: Auth | null): void {
  if (a) localStorage.setItem(AUTH_KEY, JSON.stringify(a));
  else localStorage.removeItem(AUTH_KEY);
  auth.set(a);
}

/** The sign-in is no longer valid (a 401, or the agent socket refused): sign in again. */
export function signedOut(): void {
  if (auth.get()) {
    sessionExpired.set(true);
    setAuth(null);
  }
}

export const api = new ApiClient({
  token: () => auth.get()?.token,
  onUnauthorized: signedOut,
});

// --- i18n ---

const LANG_KEY = 'helmdesk.lang';
export const locale = new Store<Locale>(pickLocale(typeof navigator !== 'undefined' ? navigator.languages : [], typeof localStorage !== 'undefined' ? localStorage.getItem(LANG_KEY) : null));

export function setLocale(l: Locale): void {
  localStorage.setItem(LANG_KEY, l);
  document.documentElement.lang = l;
  locale.set(l);
}

export function useT(): Translator {
  const l = useStore(locale);
  return translator(consoleDicts, l);
}

// --- routing ---

export const route = new Store<string>(location.pathname + location.search);

export function navigate(to: string, replace = false): void {
  if (to === route.get()) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  route.set(to);
}

addEventListener('popstate', () => route.set(location.pathname + location.search));

/** Match "/inbox/:id" style patterns; returns params or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split('/').filter(Boolean);
  const s = path.split('?')[0].split('/').filter(Boolean);
  if (p.length !== s.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(':')) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

// --- toasts ---

export interface Toast {
  id: number;
  text: string;
  kind: 'ok' | 'error' | 'info';
}
export const toasts = new Store<Toast[]>([]);
let toastId = 0;

export function toast(text: string, kind: Toast['kind'] = 'ok'): void {
  const id = ++toastId;
  toasts.set([...toasts.get(), { id, text, kind }]);
  setTimeout(() => toasts.set(toasts.get().filter((t) => t.id !== id)), kind === 'error' ? 6000 : 3500);
}

// --- formatting ---

export function relTime(t: Translator, iso?: string, now = Date.now()): string {
  if (!iso) return '';
  const s = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (s < 60) return t.t('time.just_now');
  if (s < 3600) return t.t('time.min', { n: Math.floor(s / 60) });
  if (s < 86400) return t.t('time.hour', { n: Math.floor(s / 3600) });
  return t.t('time.day', { n: Math.floor(s / 86400) });
}

export function fmtTime(iso?: string, l?: Locale): string {
  if (!iso) return '';
  const d = new Date(iso);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString(l, { hour: '2-digit', minute: '2-digit' }) : d.toLocaleString(l, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function customerName(t: Translator, s: { profile: Record<string, unknown> | null; user_id: string }): string {
  const n = s.profile?.name;
  if (typeof n === 'string' && n.trim()) return n;
  if (s.user_id?.startsWith('visitor-')) return `${t.t('inbox.visitor')} ${s.user_id.slice(8, 12).toUpperCase()}`;
  return s.user_id || t.t('inbox.customer');
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/);
  const s = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : name.slice(0, 2);
  return s.toUpperCase();
}
