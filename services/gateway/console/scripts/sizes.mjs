// Prints the gzipped size of the console's first-load JavaScript and of the widget,
// and fails when either is over budget (console ≤ 300 KB, widget ≤ 40 KB gzipped).
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const KB = 1024;
const budgets = { console: 300 * KB, widget: 40 * KB };

function gz(path) {
  return gzipSync(readFileSync(path), { level: 9 }).length;
}

if (!existsSync('dist/index.html') || !existsSync('dist/widget.js')) {
  console.error('sizes: dist/ is not built; run `npm run build`');
  process.exit(1);
}
// First load: every script and stylesheet index.html references (no lazy chunks).
const html = readFileSync('dist/index.html', 'utf8');
const refs = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]);
let js = 0;
let css = 0;
for (const r of refs) (r.endsWith('.js') ? (js += gz(`dist/${r}`)) : (css += gz(`dist/${r}`)));
const widget = gz('dist/widget.js');
const lazy = readdirSync('dist/assets').filter((f) => f.endsWith('.js') && !refs.includes(`assets/${f}`));
const fmt = (n) => `${(n / KB).toFixed(1)} KB`;
console.log(`console first-load JS: ${fmt(js)} gzipped (budget ${fmt(budgets.console)}); CSS ${fmt(css)}; lazy chunks ${lazy.length}`);
console.log(`widget.js: ${fmt(widget)} gzipped (budget ${fmt(budgets.widget)}), ${fmt(readFileSync('dist/widget.js').length)} raw`);
let failed = false;
if (js > budgets.console) {
  console.error(`console JS is over budget by ${fmt(js - budgets.console)}`);
  failed = true;
}
if (widget > budgets.widget) {
  console.error(`widget is over budget by ${fmt(widget - budgets.widget)}`);
  failed = true;
}
process.exit(failed ? 1 : 0);
