// Per-session sequence tracking: the heart of "no lost, no doubled messages".
//
// The server numbers every message of a session 1, 2, 3, … with no gaps. A client
// keeps the highest seq it has shown per session; a message at or below it is a
// duplicate (a replay after reconnect, or history that overlaps the live stream), the
// next one is new, and anything further ahead means something was missed: the client
// asks the server to resume from what it has.

export type Verdict = 'new' | 'duplicate' | 'gap';

export class SeqTracker {
  private readonly last = new Map<string, number>();

  /** The highest seq accepted for the session (0 when none). */
  get(sessionId: string): number {
    return this.last.get(sessionId) ?? 0;
  }

  has(sessionId: string): boolean {
    return this.last.has(sessionId);
  }

  /** Raise the session's mark to seq (history loaded over REST); never lowers it. */
  advance(sessionId: string, seq: number): void {
    if (seq > this.get(sessionId) || !this.last.has(sessionId)) this.last.set(sessionId, Math.max(seq, this.get(sessionId)));
  }

  /** Decide what to do with an incoming message; a "new" one moves the mark. */
  accept(sessionId: string, seq: number): Verdict {
    const last = this.get(sessionId);
    if (seq <= last) return 'duplicate';
    if (seq !== last + 1) return 'gap';
    this.last.set(sessionId, seq);
    return 'new';
  }

  sessions(): string[] {
    return [...this.last.keys()];
  }

  forget(sessionId: string): void {
    this.last.delete(sessionId);
  }
}

/** Merge messages into a list ordered by seq, dropping any seq already present. */
export function mergeBySeq<T extends { seq: number }>(list: readonly T[], incoming: readonly T[]): T[] {
  if (incoming.length === 0) return list as T[];
  const seen = new Set(list.map((m) => m.seq));
  const out = list.slice();
  let sorted = true;
  for (const m of incoming) {
    if (seen.has(m.seq)) continue;
    seen.add(m.seq);
    if (out.length && out[out.length - 1].seq > m.seq) sorted = false;
    out.push(m);
  }
  if (!sorted) out.sort((a, b) => a.seq - b.seq);
  return out;
}
