// Package console holds the built agent console and customer widget that the gateway
// serves at / and /widget.js.
//
// The source is TypeScript beside this file (src/console: Preact app; src/widget:
// framework-free widget), built by Vite into dist/ with `make console` (npm ci with the
// committed package-lock.json, then vite build). dist/ is build output and is not
// committed: only dist/.keep is, so the Go build compiles before the first front-end
// build, and the gateway then serves fallback/ (a page that says how to build).
package console

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

//go:embed fallback
var fallback embed.FS

// Files returns the built console (index.html, assets/, widget.js) and whether it
// was built; when it was not, it returns the fallback page and script instead.
func Files() (fs.FS, bool) {
	sub, err := fs.Sub(dist, "dist")
	if err == nil {
		if _, err := fs.Stat(sub, "index.html"); err == nil {
			return sub, true
		}
	}
	fb, _ := fs.Sub(fallback, "fallback")
	return fb, false
}
