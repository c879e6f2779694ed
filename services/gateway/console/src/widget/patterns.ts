// Page-pattern triggers: "*" matches any run of characters. A pattern with "://" is
// matched against the whole URL; otherwise against the path (and query, if the
// pattern has a "?").

function globToRegExp(glob: string): RegExp {
  const esc = glob.replace(/[.+^${}()|[\]\\?]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${esc}$`, 'i');
}

export function matchesPage(pattern: string, href: string): boolean {
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return false;
  }
  const p = pattern.trim();
  if (!p) return false;
  let target: string;
  if (p.includes('://')) target = url.href;
  else if (p.includes('?')) target = url.pathname + url.search;
  else target = url.pathname;
  return globToRegExp(p).test(target);
}

export function anyPageMatches(patterns: readonly string[], href: string): boolean {
  return patterns.some((p) => matchesPage(p, href));
}
