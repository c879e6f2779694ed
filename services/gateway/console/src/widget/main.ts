// Entry of /widget.js. A site embeds it with one tag:
//
//   <script src="https://helmdesk.example.com/widget.js" data-channel="hdw_…" async></script>
//
// Optional: window.HelmdeskSettings = { user_id, profile: { name, email, user_level, … },
// locale: "zh-CN" | "en" } before the tag (or data-user-id / data-user-name /
// data-locale on it). Without a user id the widget keeps an anonymous visitor id in
// localStorage. It sets no cookies.

import { ApiClient } from '../shared/api';
import { pickLocale, type Locale } from '../shared/i18n';
import type { WidgetConfig } from '../shared/types';
import { HelmdeskWidget, type Visitor } from './widget';

interface Settings {
  user_id?: string;
  profile?: Record<string, unknown>;
  locale?: Locale;
  channel?: string;
}

declare global {
  interface Window {
    HelmdeskSettings?: Settings;
    Helmdesk?: { open(): void; close(): void; toggle(): void; widget: HelmdeskWidget };
  }
}

function findScript(): HTMLScriptElement | null {
  const cur = document.currentScript as HTMLScriptElement | null;
  if (cur?.dataset.channel) return cur;
  return document.querySelector<HTMLScriptElement>('script[data-channel][src*="widget.js"]');
}

function storage(): Storage | null {
  try {
    const s = window.localStorage;
    s.setItem('helmdesk:probe', '1');
    s.removeItem('helmdesk:probe');
    return s;
  } catch {
    return null;
  }
}

function visitorId(store: Storage | null): string {
  const key = 'helmdesk:visitor';
  let id = store?.getItem(key);
  if (!id) {
    const rnd = crypto?.getRandomValues ? Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, '0')).join('') : Math.random().toString(16).slice(2);
    id = `visitor-${rnd}`;
    try {
      store?.setItem(key, id);
    } catch {
      /* ignore */
    }
  }
  return id;
}

// document.currentScript is only set while the tag itself runs: capture it now.
const thisScript = findScript();

async function boot(): Promise<void> {
  const script = thisScript ?? findScript();
  const settings = window.HelmdeskSettings ?? {};
  const channelKey = settings.channel ?? script?.dataset.channel;
  if (!script || !channelKey) {
    console.warn('Helmdesk: add data-channel="YOUR_CHANNEL_KEY" to the widget <script> tag.');
    return;
  }
  const base = new URL(script.src, location.href).origin;
  const store = storage();
  const profile: Record<string, unknown> = { ...(settings.profile ?? {}) };
  if (script.dataset.userName && !profile.name) profile.name = script.dataset.userName;
  const visitor: Visitor = { userId: settings.user_id ?? script.dataset.userId ?? visitorId(store), profile };
  const locale = pickLocale(navigator.languages, settings.locale ?? script.dataset.locale);

  const api = new ApiClient({ base });
  let config: WidgetConfig | null = null;
  for (let attempt = 0; attempt < 5 && !config; attempt++) {
    try {
      config = await api.get<WidgetConfig>(`/api/v1/channels/by_key/${encodeURIComponent(channelKey)}/widget`);
    } catch (e) {
      if ((e as { status?: number }).status === 404) {
        console.warn(`Helmdesk: no channel with key ${channelKey}; check the data-channel attribute.`);
        return;
      }
      await new Promise((r) => setTimeout(r, 1000 * 2 ** attempt));
    }
  }
  if (!config) return;

  const host = document.createElement('div');
  host.id = 'helmdesk-widget';
  host.setAttribute('data-helmdesk', '');
  document.body.append(host);
  const widget = new HelmdeskWidget(host, { base, channelKey, config, visitor, locale, storage: store });
  window.Helmdesk = { open: () => widget.open(), close: () => widget.close(), toggle: () => widget.toggle(), widget };
  window.dispatchEvent(new CustomEvent('helmdesk:ready'));
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => void boot());
else void boot();
