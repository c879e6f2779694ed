import { describe, expect, it } from 'vitest';
import { mergeBySeq, SeqTracker } from './seq';

describe('SeqTracker', () => {
  it('accepts the next seq, drops repeats, flags gaps', () => {
    const s = new SeqTracker();
    expect(s.accept('a', 1)).toBe('new');
    expect(s.accept('a', 2)).toBe('new');
    expect(s.accept('a', 2)).toBe('duplicate');
    expect(s.accept('a', 1)).toBe('duplicate');
    expect(s.accept('a', 4)).toBe('gap');
    expect(s.get('a')).toBe(2); // a gap does not move the mark
    expect(s.accept('a', 3)).toBe('new');
    expect(s.accept('b', 1)).toBe('new'); // sessions are independent
  });
  it('advances from history but never goes back', () => {
    const s = new SeqTracker();
    s.advance('a', 10);
    expect(s.accept('a', 10)).toBe('duplicate');
    expect(s.accept('a', 11)).toBe('new');
    s.advance('a', 5);
    expect(s.get('a')).toBe(11);
  });
});

describe('mergeBySeq', () => {
  const m = (seq: number) => ({ seq, text: `m${seq}` });
  it('merges history and live messages in order without duplicates', () => {
    const got = mergeBySeq([m(1), m(2), m(5)], [m(2), m(3), m(4), m(5), m(6)]);
    expect(got.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5, 6]);
  });
  it('returns the same list when nothing is new', () => {
    const list = [m(1)];
    expect(mergeBySeq(list, [])).toBe(list);
  });
});
