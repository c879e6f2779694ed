// Minimal i18n: flat dictionaries per locale, {name} interpolation, English fallback.
// zh-CN is chosen when the browser asks for any Chinese; English otherwise; the user's
// explicit choice is remembered.

export type Locale = 'en' | 'zh-CN';
export const LOCALES: Locale[] = ['en', 'zh-CN'];
export type Dict = Record<string, string>;
export type Params = Record<string, string | number>;

/** The locale to use for a browser's preferred languages (navigator.languages). */
export function pickLocale(preferred: readonly string[] | undefined, stored?: string | null): Locale {
  if (stored === 'en' || stored === 'zh-CN') return stored;
  for (const lang of preferred ?? []) {
    const l = lang.toLowerCase();
    if (l === 'zh' || l.startsWith('zh-')) return 'zh-CN';
    if (l === 'en' || l.startsWith('en-')) return 'en';
  }
  return 'en';
}

export function interpolate(s: string, params?: Params): string {
  if (!params) return s;
  return s.replace(/\{(\w+)\}/g, (m, k: string) => (k in params ? String(params[k]) : m));
}

export interface Translator {
  locale: Locale;
  t(key: string, params?: Params): string;
  has(key: string): boolean;
}

export function translator(dicts: Record<Locale, Dict>, locale: Locale): Translator {
  const primary = dicts[locale] ?? {};
  const fallback = dicts.en ?? {};
  return {
    locale,
    t(key, params) {
      const s = primary[key] ?? fallback[key];
      return s === undefined ? key : interpolate(s, params);
    },
    has(key) {
      return key in primary || key in fallback;
    },
  };
}

/** Keys present in one dictionary and missing in the other (for tests). */
export function missingKeys(a: Dict, b: Dict): string[] {
  return Object.keys(a).filter((k) => !(k in b));
}

/** Placeholders ({x}) of a string, sorted (both translations must use the same). */
export function placeholders(s: string): string[] {
  return [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
}
