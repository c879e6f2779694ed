// Empties dist/ but keeps dist/.keep: the Go package embeds dist/, and go:embed needs
// the folder to exist even when the console was never built.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
for (const name of readdirSync('dist')) {
  if (name !== '.keep') rmSync(`dist/${name}`, { recursive: true, force: true });
}
writeFileSync('dist/.keep', '');
