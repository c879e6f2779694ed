import { describe, expect, it } from 'vitest';
import { anyPageMatches, matchesPage } from './patterns';
import { textOn } from './widget';

describe('page pattern triggers', () => {
  it.each([
    ['/pricing*', 'https://shop.example/pricing', true],
    ['/pricing*', 'https://shop.example/pricing/enterprise?x=1', true],
    ['/pricing', 'https://shop.example/pricing/enterprise', false],
    ['/checkout', 'https://shop.example/checkout?step=2', true], // no "?" in the pattern: path only
    ['/search?q=*', 'https://shop.example/search?q=refund', true],
    ['https://shop.example/*', 'https://shop.example/any/page', true],
    ['https://other.example/*', 'https://shop.example/any/page', false],
    ['*/help/*', 'https://shop.example/en/help/returns', true],
    ['/a.b', 'https://shop.example/aXb', false], // dots are literal
    ['', 'https://shop.example/', false],
  ])('%s on %s → %s', (pattern, href, want) => expect(matchesPage(pattern, href)).toBe(want));

  it('any of several patterns', () => {
    expect(anyPageMatches(['/x', '/pricing*'], 'https://s.example/pricing')).toBe(true);
    expect(anyPageMatches([], 'https://s.example/pricing')).toBe(false);
  });
});

describe('launcher text colour', () => {
  it('reads on light and dark brand colours', () => {
    expect(textOn('#1f6feb')).toBe('#ffffff');
    expect(textOn('#ffd60a')).toBe('#111827');
    expect(textOn('nonsense')).toBe('#fff');
  });
});
