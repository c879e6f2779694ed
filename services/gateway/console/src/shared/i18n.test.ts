import { describe, expect, it } from 'vitest';
import { interpolate, missingKeys, pickLocale, placeholders, translator } from './i18n';
import { consoleDicts } from '../console/messages';
import { widgetDicts } from '../widget/i18n';

describe('pickLocale', () => {
  it.each([
    [['zh-CN', 'en'], null, 'zh-CN'],
    [['zh-TW'], null, 'zh-CN'],
    [['zh'], null, 'zh-CN'],
    [['en-GB', 'zh-CN'], null, 'en'],
    [['fr-FR', 'zh-CN'], null, 'zh-CN'],
    [['fr-FR', 'de'], null, 'en'],
    [[], null, 'en'],
    [undefined, null, 'en'],
    [['zh-CN'], 'en', 'en'], // an explicit choice wins
    [['en-US'], 'zh-CN', 'zh-CN'],
    [['en-US'], 'klingon', 'en'], // an unknown stored value is ignored
  ] as const)('%j stored %s → %s', (langs, stored, want) => {
    expect(pickLocale(langs as readonly string[] | undefined, stored)).toBe(want);
  });
});

describe('translator', () => {
  const t = translator({ en: { hi: 'Hello {name}', only_en: 'English only' }, 'zh-CN': { hi: '你好 {name}' } }, 'zh-CN');
  it('translates and interpolates', () => expect(t.t('hi', { name: '王' })).toBe('你好 王'));
  it('falls back to English, then to the key', () => {
    expect(t.t('only_en')).toBe('English only');
    expect(t.t('nope')).toBe('nope');
  });
  it('leaves unknown placeholders', () => expect(interpolate('{a} {b}', { a: 1 })).toBe('1 {b}'));
});

describe.each([
  ['console', consoleDicts],
  ['widget', widgetDicts],
])('%s dictionaries', (_, dicts) => {
  it('have the same keys in English and Chinese', () => {
    expect(missingKeys(dicts.en, dicts['zh-CN'])).toEqual([]);
    expect(missingKeys(dicts['zh-CN'], dicts.en)).toEqual([]);
  });
  it('use the same placeholders in both languages', () => {
    for (const k of Object.keys(dicts.en)) expect([k, placeholders(dicts['zh-CN'][k])]).toEqual([k, placeholders(dicts.en[k])]);
  });
  it('have no empty translations', () => {
    for (const [k, v] of Object.entries(dicts['zh-CN'])) expect([k, v.trim().length > 0]).toEqual([k, true]);
  });
});
