// The console shell: first-run setup, sign-in, then the workspace with a sidebar that
// shows each role what it may use.

import { useEffect, useState } from 'preact/hooks';
import type { ComponentChildren } from 'preact';
import { ApiError } from '../shared/api';
import { toFormErrors, type FormErrors } from '../shared/forms';
import type { User } from '../shared/types';
import { api, auth, locale, match, navigate, route, sessionExpired, setAuth, setLocale, useStore, useT } from './core';
import { live } from './live';
import { Button, Empty, Field, FormError, Icon, Spinner, Toasts } from './ui';
import { InboxPage } from './pages/inbox';
import { MonitorPage } from './pages/monitor';
import { ReviewsPage } from './pages/reviews';
import { AgentsPage } from './pages/agents';
import { GroupsPage } from './pages/groups';
import { RoutingPage } from './pages/routing';
import { ChannelsPage } from './pages/channels';
import { ApiKeysPage } from './pages/apikeys';
import { AuditPage } from './pages/audit';
import { StatusSwitch, NotifyButton, ConnectionBanner, notifyNewConversation } from './presence';

export function App() {
  const a = useStore(auth);
  const [setupDone, setSetupDone] = useState<boolean | null>(null);
  const [error, setError] = useState('');
  const t = useT();

  const check = () => {
    setError('');
    api.get<{ setup_done: boolean }>('/api/v1/setup').then(
      (r) => setSetupDone(r.setup_done),
      (e) => setError(e instanceof ApiError ? e.message : String(e)),
    );
  };
  useEffect(check, []);

  if (error)
    return (
      <AuthLayout>
        <FormError text={t.t('error.network_error')} />
        <Button onClick={check} icon="refresh">
          {t.t('common.retry')}
        </Button>
      </AuthLayout>
    );
  if (setupDone === null) return <Spinner />;
  if (!setupDone) return <SetupPage onDone={() => setSetupDone(true)} />;
  if (!a) return <LoginPage />;
  return <Shell user={a.user} />;
}

function LangToggle() {
  const l = useStore(locale);
  const t = useT();
  return (
    <button class="lang-toggle" onClick={() => setLocale(l === 'en' ? 'zh-CN' : 'en')} title="Language / 语言" data-testid="lang-toggle">
      <Icon name="lang" size={15} /> {t.t('lang.switch')}
    </button>
  );
}

function AuthLayout({ children }: { children: ComponentChildren }) {
  const t = useT();
  return (
    <div class="auth">
      <div class="auth-side">
        <div class="brand brand-lg">
          <span class="brand-mark">
            <Icon name="chat" size={20} />
          </span>
          Helmdesk
        </div>
        <h2>{t.t('app.tagline')}</h2>
        <ul class="auth-points">
          <li>
            <Icon name="chat" /> Web · App · WeChat
          </li>
          <li>
            <Icon name="route" /> Smart routing · 智能路由
          </li>
          <li>
            <Icon name="shield" /> Self-hosted on Kubernetes
          </li>
        </ul>
      </div>
      <div class="auth-main">
        <div class="auth-top">
          <LangToggle />
        </div>
        <div class="auth-card">{children}</div>
      </div>
    </div>
  );
}

function SetupPage({ onDone }: { onDone: () => void }) {
  const t = useT();
  const [f, setF] = useState({ organization: '', name: '', email: '', password: '' });
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrs({ fields: {} });
    try {
      const r = await api.post<{ token: string; expires_at: string; admin: User }>('/api/v1/setup', {
        organization: f.organization,
        admin: { email: f.email, password: f.password, name: f.name },
      });
      setAuth({ token: r.token, user: r.admin, expires_at: r.expires_at });
      navigate('/admin/agents', true);
      onDone();
    } catch (err) {
      if (err instanceof ApiError && err.code === 'setup_already_done') {
        onDone();
        return;
      }
      setErrs(toFormErrors(err, ['organization', 'name', 'email', 'password'], t, { 'admin.email': 'email', 'admin.password': 'password', 'admin.name': 'name', email: 'email', password: 'password' }));
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthLayout>
      <h1>{t.t('setup.title')}</h1>
      <p class="muted">{t.t('setup.subtitle')}</p>
      <form onSubmit={submit} noValidate data-testid="setup-form">
        <FormError text={errs.form} />
        <Field label={t.t('setup.organization')} error={errs.fields.organization} id="organization">
          <input id="organization" name="organization" value={f.organization} onInput={set('organization')} autoComplete="organization" />
        </Field>
        <Field label={t.t('setup.name')} error={errs.fields.name} id="name">
          <input id="name" name="name" value={f.name} onInput={set('name')} autoComplete="name" />
        </Field>
        <Field label={t.t('setup.email')} error={errs.fields.email} id="email">
          <input id="email" name="email" type="email" value={f.email} onInput={set('email')} autoComplete="email" />
        </Field>
        <Field label={t.t('setup.password')} error={errs.fields.password} hint={t.t('setup.password_hint')} id="password">
          <input id="password" name="password" type="password" value={f.password} onInput={set('password')} autoComplete="new-password" />
        </Field>
        <Button variant="primary" type="submit" busy={busy} class="btn-block">
          {t.t('setup.submit')}
        </Button>
      </form>
    </AuthLayout>
  );
}

function LoginPage() {
  const t = useT();
  const expired = useStore(sessionExpired);
  const [f, setF] = useState({ email: '', password: '' });
  const [errs, setErrs] = useState<FormErrors>({ fields: {} });
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrs({ fields: {} });
    try {
      const r = await api.post<{ token: string; expires_at: string; user: User }>('/api/v1/auth/login', f);
      sessionExpired.set(false);
      setAuth({ token: r.token, user: r.user, expires_at: r.expires_at });
      const r0 = route.get();
      if (r0 === '/' || r0.startsWith('/login') || r0.startsWith('/setup')) navigate(homeFor(new Set(BUILTIN[r.user.role] ?? [])), true);
    } catch (err) {
      setErrs(toFormErrors(err, ['email', 'password'], t));
    } finally {
      setBusy(false);
    }
  };
  return (
    <AuthLayout>
      <h1>{t.t('login.title')}</h1>
      <p class="muted">{t.t('login.subtitle')}</p>
      {expired ? <div class="notice">{t.t('login.expired')}</div> : null}
      <form onSubmit={submit} noValidate data-testid="login-form">
        <FormError text={errs.form} />
        <Field label={t.t('login.email')} error={errs.fields.email} id="email">
          <input id="email" name="email" type="email" value={f.email} onInput={(e) => setF({ ...f, email: (e.target as HTMLInputElement).value })} autoComplete="username" />
        </Field>
        <Field label={t.t('login.password')} error={errs.fields.password} id="password">
          <input id="password" name="password" type="password" value={f.password} onInput={(e) => setF({ ...f, password: (e.target as HTMLInputElement).value })} autoComplete="current-password" />
        </Field>
        <Button variant="primary" type="submit" busy={busy} class="btn-block">
          {t.t('login.submit')}
        </Button>
      </form>
    </AuthLayout>
  );
}

interface NavItem {
  path: string;
  label: string;
  icon: string;
  /** Any of these permissions shows the item (see GET /api/v1/permissions). */
  perms: string[];
}

const NAV: NavItem[] = [
  { path: '/inbox', label: 'nav.inbox', icon: 'inbox', perms: ['sessions.reply'] },
  { path: '/monitor', label: 'nav.monitor', icon: 'activity', perms: ['queues.read', 'sessions.read_team'] },
  { path: '/reviews', label: 'nav.reviews', icon: 'star', perms: ['reviews.write', 'reviews.read'] },
];
const ADMIN_NAV: NavItem[] = [
  { path: '/admin/agents', label: 'nav.agents', icon: 'users', perms: ['agents.manage'] },
  { path: '/admin/groups', label: 'nav.groups', icon: 'layers', perms: ['groups.manage'] },
  { path: '/admin/routing', label: 'nav.routing', icon: 'route', perms: ['routing.manage'] },
  { path: '/admin/channels', label: 'nav.channels', icon: 'globe', perms: ['channels.manage'] },
  { path: '/admin/api-keys', label: 'nav.api_keys', icon: 'key', perms: ['api_keys.manage'] },
  { path: '/admin/audit', label: 'nav.audit', icon: 'list', perms: ['audit.read'] },
];

/** The built-in roles' permissions, used until the server has told us (or if it cannot). */
const BUILTIN: Record<string, string[]> = {
  admin: [...NAV, ...ADMIN_NAV].flatMap((n) => n.perms),
  supervisor: ['sessions.reply', 'queues.read', 'sessions.read_team', 'reviews.read'],
  agent: ['sessions.reply'],
  qa: ['reviews.write', 'reviews.read'],
};

function homeFor(perms: Set<string>): string {
  const first = [...NAV, ...ADMIN_NAV].find((n) => n.perms.some((p) => perms.has(p)));
  return first?.path ?? '/inbox';
}

function Shell({ user }: { user: User }) {
  const t = useT();
  const path = useStore(route);
  const [perms, setPerms] = useState<Set<string>>(new Set(BUILTIN[user.role] ?? []));
  useEffect(() => {
    api.get<{ mine: string[] }>('/api/v1/permissions').then(
      (r) => r.mine && setPerms(new Set(r.mine)),
      () => undefined,
    );
  }, [user.id]);
  const takesChats = perms.has('sessions.reply');

  useEffect(() => {
    if (!takesChats) return;
    live.start(user.id, auth.get()!.token, notifyNewConversation);
    return () => live.stop();
  }, [user.id, takesChats]);

  useEffect(() => {
    if (path === '/' || path.startsWith('/login') || path.startsWith('/setup')) navigate(homeFor(perms), true);
  }, [path, perms]);

  const logout = async () => {
    try {
      await api.post('/api/v1/auth/logout');
    } catch {
      /* signing out locally is enough */
    }
    live.stop();
    setAuth(null);
    navigate('/', true);
  };

  const can = (n: NavItem) => n.perms.some((p) => perms.has(p));
  const page = pageFor(path, user, perms);
  return (
    <div class="shell">
      <aside class="sidebar">
        <div class="brand">
          <span class="brand-mark">
            <Icon name="chat" size={18} />
          </span>
          Helmdesk
        </div>
        <nav>
          {NAV.filter(can).map((n) => (
            <NavLink item={n} path={path} label={t.t(n.label)} />
          ))}
          {ADMIN_NAV.some(can) ? <div class="nav-section">{t.t('nav.admin')}</div> : null}
          {ADMIN_NAV.filter(can).map((n) => (
            <NavLink item={n} path={path} label={t.t(n.label)} />
          ))}
        </nav>
        <div class="sidebar-foot">
          <div class="me">
            <span class="me-avatar">{user.name.slice(0, 1).toUpperCase()}</span>
            <div class="me-text">
              <div class="me-name" data-testid="me-name">
                {user.name}
              </div>
              <div class="me-role">{t.has(`role.${user.role}`) ? t.t(`role.${user.role}`) : user.role}</div>
            </div>
          </div>
          <button class="nav-link" onClick={logout} data-testid="logout">
            <Icon name="logout" /> <span>{t.t('nav.logout')}</span>
          </button>
        </div>
      </aside>
      <div class="main">
        <header class="topbar">
          <div class="topbar-title">{t.t(titleFor(path))}</div>
          <div class="topbar-actions">
            {takesChats ? <NotifyButton /> : null}
            {takesChats ? <StatusSwitch user={user} /> : null}
            <LangToggle />
          </div>
        </header>
        {takesChats ? <ConnectionBanner /> : null}
        <div class="content">{page}</div>
      </div>
      <Toasts />
    </div>
  );
}

function NavLink({ item, path, label }: { item: NavItem; path: string; label: string }) {
  const active = path === item.path || path.startsWith(item.path + '/');
  return (
    <a
      href={item.path}
      class={`nav-link${active ? ' active' : ''}`}
      data-testid={`nav-${item.path.split('/').pop()}`}
      onClick={(e) => {
        e.preventDefault();
        navigate(item.path);
      }}
    >
      <Icon name={item.icon} /> <span>{label}</span>
    </a>
  );
}

function titleFor(path: string): string {
  const all = [...NAV, ...ADMIN_NAV];
  const n = all.find((x) => path === x.path || path.startsWith(x.path + '/'));
  return n?.label ?? 'app.name';
}

function pageFor(path: string, user: User, perms: Set<string>) {
  let m: Record<string, string> | null;
  const allowed = (p: string) => [...NAV, ...ADMIN_NAV].some((n) => (path === n.path || path.startsWith(n.path + '/')) && n.path === p && n.perms.some((x) => perms.has(x)));
  const denied = <Empty icon="shield" title={`403 · ${path}`} />;
  if ((m = match('/inbox', path)) || (m = match('/inbox/:id', path))) return allowed('/inbox') ? <InboxPage user={user} id={m.id} /> : denied;
  if ((m = match('/monitor', path)) || (m = match('/monitor/:id', path))) return allowed('/monitor') ? <MonitorPage user={user} id={m.id} /> : denied;
  if ((m = match('/reviews', path)) || (m = match('/reviews/:id', path))) return allowed('/reviews') ? <ReviewsPage user={user} id={m.id} canReview={perms.has('reviews.write')} /> : denied;
  if (match('/admin/agents', path)) return allowed('/admin/agents') ? <AgentsPage /> : denied;
  if (match('/admin/groups', path)) return allowed('/admin/groups') ? <GroupsPage /> : denied;
  if (match('/admin/routing', path)) return allowed('/admin/routing') ? <RoutingPage /> : denied;
  if ((m = match('/admin/channels', path)) || (m = match('/admin/channels/:id', path))) return allowed('/admin/channels') ? <ChannelsPage id={m.id} /> : denied;
  if (match('/admin/api-keys', path)) return allowed('/admin/api-keys') ? <ApiKeysPage /> : denied;
  if (match('/admin/audit', path)) return allowed('/admin/audit') ? <AuditPage /> : denied;
  return <Empty icon="alert" title={`404 · ${path}`} />;
}
