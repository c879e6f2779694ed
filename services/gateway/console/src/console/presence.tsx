// Presence and attention: the online/away switch, the connection banner, and the
// sound + desktop notification for a new conversation.

import { useEffect, useState } from 'preact/hooks';
import { errorMessage } from '../shared/forms';
import type { Session, User } from '../shared/types';
import { api, customerName, locale, toast, useStore, useT } from './core';
import { consoleDicts } from './messages';
import { translator } from '../shared/i18n';
import { live } from './live';
import { Icon } from './ui';

type Status = 'online' | 'away' | 'offline';

export function StatusSwitch({ user }: { user: User }) {
  const t = useT();
  const [status, setStatus] = useState<Status | null>(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api.get<{ status: Status }>('/api/v1/agents/online_status', { agent_id: user.id }).then(
      (r) => setStatus(r.status),
      () => setStatus('offline'),
    );
  }, [user.id]);
  const change = async (s: Status) => {
    setBusy(true);
    try {
      const r = await api.put<{ status: Status }>(`/api/v1/agents/${user.id}/status`, { status: s });
      setStatus(r.status);
    } catch (e) {
      toast(errorMessage(e, t), 'error');
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class={`status-switch${busy ? ' busy' : ''}`} role="radiogroup" aria-label={t.t('status.label')} data-testid="status-switch">
      {(['online', 'away', 'offline'] as Status[]).map((s) => (
        <button role="radio" aria-checked={status === s} class={`status-opt${status === s ? ' on' : ''} s-${s}`} onClick={() => change(s)} disabled={busy} data-testid={`status-${s}`}>
          <span class="dot" /> {t.t(`status.${s}`)}
        </button>
      ))}
    </div>
  );
}

export function ConnectionBanner() {
  const t = useT();
  const st = useStore(live.store);
  const [online, setOnline] = useState(navigator.onLine);
  useEffect(() => {
    const on = () => setOnline(true);
    const off = () => setOnline(false);
    addEventListener('online', on);
    addEventListener('offline', off);
    return () => {
      removeEventListener('online', on);
      removeEventListener('offline', off);
    };
  }, []);
  if (online && st.conn !== 'reconnecting') return null;
  return (
    <div class={`conn-banner${online ? '' : ' bad'}`} role="status" data-testid="conn-banner">
      <Icon name={online ? 'refresh' : 'wifi_off'} size={15} class={online ? 'spin' : ''} /> {online ? t.t('conn.reconnecting') : t.t('conn.offline')}
    </div>
  );
}

const NOTIFY_KEY = 'helmdesk.notify';

export function NotifyButton() {
  const t = useT();
  const supported = typeof Notification !== 'undefined';
  const [perm, setPerm] = useState(supported ? Notification.permission : 'denied');
  if (!supported || perm === 'denied') return null;
  const on = perm === 'granted';
  return (
    <button
      class={`icon-btn bell${on ? ' on' : ''}`}
      title={on ? t.t('notify.enabled') : t.t('notify.enable')}
      aria-label={on ? t.t('notify.enabled') : t.t('notify.enable')}
      onClick={async () => {
        if (on) return;
        const p = await Notification.requestPermission();
        localStorage.setItem(NOTIFY_KEY, p);
        setPerm(p);
        beep();
      }}
    >
      <Icon name="bell" />
    </button>
  );
}

let audio: AudioContext | null = null;

/** A short two-tone chime, synthesised (no sound file to ship). */
export function beep(): void {
  try {
    audio ??= new AudioContext();
    const now = audio.currentTime;
    for (const [i, f] of [880, 1320].entries()) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.type = 'sine';
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, now + i * 0.12);
      g.gain.exponentialRampToValueAtTime(0.15, now + i * 0.12 + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, now + i * 0.12 + 0.3);
      o.connect(g).connect(audio.destination);
      o.start(now + i * 0.12);
      o.stop(now + i * 0.12 + 0.32);
    }
  } catch {
    /* no audio: the visual cue remains */
  }
}

let titleTimer: ReturnType<typeof setInterval> | null = null;

export function notifyNewConversation(s: Session): void {
  const t = translator(consoleDicts, locale.get());
  const name = customerName(t, s);
  beep();
  toast(`${t.t('notify.new_title')}: ${name}`, 'info');
  if (typeof Notification !== 'undefined' && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    try {
      const n = new Notification(t.t('notify.new_title'), { body: t.t('notify.new_body', { name }), tag: s.id, icon: '/favicon.svg' });
      n.onclick = () => {
        window.focus();
        history.pushState(null, '', `/inbox/${s.id}`);
        dispatchEvent(new PopStateEvent('popstate'));
      };
    } catch {
      /* some browsers only allow notifications from a service worker */
    }
  }
  if (document.visibilityState !== 'visible' && !titleTimer) {
    const orig = document.title;
    let on = false;
    titleTimer = setInterval(() => {
      document.title = (on = !on) ? `● ${t.t('notify.new_title')}` : orig;
    }, 1000);
    const stop = () => {
      if (titleTimer) clearInterval(titleTimer);
      titleTimer = null;
      document.title = orig;
      document.removeEventListener('visibilitychange', stop);
    };
    document.addEventListener('visibilitychange', stop);
  }
}
