// Keeps the Go tool out of node_modules: a go.mod makes it a separate module, so
// `go build ./...`, `go vet ./...` and `go test ./...` never see stray .go files that
// some npm packages ship.
import { existsSync, writeFileSync } from 'node:fs';

if (existsSync('node_modules')) writeFileSync('node_modules/go.mod', 'module ignore/node_modules\n');
