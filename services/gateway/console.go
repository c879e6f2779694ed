package gateway

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/helmdesk/helmdesk/services/gateway/console"
)

// The console and the widget are static files built by Vite and embedded in the
// binary (see services/gateway/console). The gateway serves them from memory:
//
//   - /widget.js: the customer widget, loaded by other sites; cached for 5 minutes
//     (its URL never changes, so it cannot be cached forever).
//   - /assets/*: content-hashed console bundles, cached for a year as immutable.
//   - any other path without a file extension: the console's index.html (the app routes
//     in the browser), never cached, with a strict Content-Security-Policy.
//
// Text files are gzipped once at start and served compressed to clients that accept it.

const (
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheWidget    = "public, max-age=300"
	cacheStatic    = "public, max-age=3600"
	cacheNever     = "no-cache"

	// consoleCSP allows only the console's own scripts; sockets go to the same host.
	consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
		"font-src 'self' data:; connect-src 'self' ws: wss:; media-src 'self' data: blob:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)

// staticFile is one embedded file, ready to serve.
type staticFile struct {
	body        []byte
	gz          []byte // nil when not worth compressing
	contentType string
	etag        string
}

type consoleHandler struct {
	files map[string]*staticFile // by path without the leading slash
	built bool
}

// mountConsole serves the console at / and the widget at /widget.js. "/" is the least
// specific pattern, so every API, socket and health route keeps precedence.
func (g *Gateway) mountConsole(mux *http.ServeMux) {
	mux.Handle("/", newConsoleHandler(console.Files()))
}

func newConsoleHandler(fsys fs.FS, built bool) *consoleHandler {
	h := &consoleHandler{files: map[string]*staticFile{}, built: built}
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(path.Base(p), ".") {
			return nil
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil
		}
		h.files[p] = newStaticFile(p, body)
		return nil
	})
	return h
}

func newStaticFile(name string, body []byte) *staticFile {
	sum := sha256.Sum256(body)
	f := &staticFile{body: body, contentType: contentTypeOf(name), etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	if compressible(f.contentType) && len(body) >= 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body)*9/10 {
			f.gz = buf.Bytes()
		}
	}
	return f
}

func contentTypeOf(name string) string {
	switch ext := strings.ToLower(path.Ext(name)); ext {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".woff2":
		return "font/woff2"
	case ".txt":
		return "text/plain; charset=utf-8"
	default:
		if t := mime.TypeByExtension(ext); t != "" {
			return t
		}
		return "application/octet-stream"
	}
}

func compressible(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "image/svg")
}

func (h *consoleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch {
	case p == "widget.js":
		// Loaded by <script> on customers' sites; any origin may read it.
		w.Header().Set("Access-Control-Allow-Origin", "*")
		h.serve(w, r, h.files[p], cacheWidget)
	case strings.HasPrefix(p, "assets/"):
		h.serve(w, r, h.files[p], cacheImmutable)
	case h.files[p] != nil && p != "index.html":
		h.serve(w, r, h.files[p], cacheStatic)
	case p != "" && strings.Contains(path.Base(p), "."):
		h.serve(w, r, nil, "") // a missing file, not an app route
	default:
		w.Header().Set("Content-Security-Policy", consoleCSP)
		w.Header().Set("Referrer-Policy", "same-origin")
		w.Header().Set("X-Frame-Options", "DENY")
		h.serve(w, r, h.files["index.html"], cacheNever)
	}
}

func (h *consoleHandler) serve(w http.ResponseWriter, r *http.Request, f *staticFile, cache string) {
	if f == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", f.contentType)
	hd.Set("Cache-Control", cache)
	hd.Set("ETag", f.etag)
	if f.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
	}
	if etagMatches(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		enc, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(enc), "gzip") {
			continue
		}
		if q, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			v, err := strconv.ParseFloat(q, 64)
			return err == nil && v > 0
		}
		return true
	}
	return false
}

// withCORS lets web pages on any origin call the API: the chat widget runs on
// customers' sites and talks to the gateway directly. This is safe because the API
// authenticates with bearer tokens only, never cookies, so a foreign page can do
// nothing with a visitor's browser that it could not do without it (credentials are
// never allowed). Preflight requests are answered here.
func withCORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" && strings.HasPrefix(r.URL.Path, "/api/") {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", "*")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
