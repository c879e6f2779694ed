package gateway

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/helmdesk/helmdesk/services/gateway/console"
)

func testConsole() *consoleHandler {
	big := strings.Repeat("console.log('helmdesk');\n", 200)
	return newConsoleHandler(fstest.MapFS{
		"index.html":             {Data: []byte("<!doctype html><title>Helmdesk</title><div id=app></div>")},
		"assets/index-abc12.js":  {Data: []byte(big)},
		"assets/index-abc12.css": {Data: []byte("body{color:red}")},
		"widget.js":              {Data: []byte("(function(){" + big + "})()")},
		"favicon.svg":            {Data: []byte("<svg xmlns='http://www.w3.org/2000/svg'/>")},
		".keep":                  {Data: nil},
	}, true)
}

func TestConsoleServing(t *testing.T) {
	h := testConsole()
	tests := []struct {
		name        string
		method      string
		path        string
		status      int
		contentType string
		cache       string
		body        string // substring
	}{
		{"root is the app", "GET", "/", 200, "text/html; charset=utf-8", "no-cache", "<div id=app>"},
		{"app route falls back to index", "GET", "/inbox/0190abc", 200, "text/html; charset=utf-8", "no-cache", "<div id=app>"},
		{"admin route falls back", "GET", "/admin/channels", 200, "text/html; charset=utf-8", "no-cache", "<div id=app>"},
		{"hashed asset is immutable", "GET", "/assets/index-abc12.js", 200, "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", "helmdesk"},
		{"css", "GET", "/assets/index-abc12.css", 200, "text/css; charset=utf-8", "public, max-age=31536000, immutable", "color:red"},
		{"widget", "GET", "/widget.js", 200, "text/javascript; charset=utf-8", "public, max-age=300", "helmdesk"},
		{"other static file", "GET", "/favicon.svg", 200, "image/svg+xml", "public, max-age=3600", "<svg"},
		{"missing asset is 404 not the app", "GET", "/assets/nope.js", 404, "", "no-store", "not found"},
		{"missing file is 404", "GET", "/robots.txt", 404, "", "no-store", "not found"},
		{"hidden files are not served", "GET", "/.keep", 404, "", "no-store", ""},
		{"head", "HEAD", "/widget.js", 200, "text/javascript; charset=utf-8", "public, max-age=300", ""},
		{"post is refused", "POST", "/", 405, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.contentType != "" && rec.Header().Get("Content-Type") != tc.contentType {
				t.Fatalf("Content-Type %q, want %q", rec.Header().Get("Content-Type"), tc.contentType)
			}
			if tc.cache != "" && rec.Header().Get("Cache-Control") != tc.cache {
				t.Fatalf("Cache-Control %q, want %q", rec.Header().Get("Cache-Control"), tc.cache)
			}
			if !strings.Contains(rec.Body.String(), tc.body) {
				t.Fatalf("body %q does not contain %q", rec.Body.String(), tc.body)
			}
			if tc.method == "HEAD" && rec.Body.Len() != 0 {
				t.Fatal("HEAD answered with a body")
			}
		})
	}
}

func TestConsoleHeaders(t *testing.T) {
	h := testConsole()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("index CSP = %q", csp)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/widget.js", nil))
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("widget headers = %v", rec.Header())
	}
}

func TestConsoleGzipAndETag(t *testing.T) {
	h := testConsole()
	req := httptest.NewRequest("GET", "/assets/index-abc12.js", nil)
	req.Header.Set("Accept-Encoding", "br, gzip;q=0.8")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "gzip" || rec.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers = %v", rec.Header())
	}
	zr, err := gzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if !strings.HasPrefix(string(plain), "console.log('helmdesk');") || rec.Body.Len() >= len(plain)/4 {
		t.Fatalf("gzip body: %d compressed, %d plain", rec.Body.Len(), len(plain))
	}
	etag := rec.Header().Get("ETag")

	// Clients that do not accept gzip (or refuse it) get the plain file.
	for _, ae := range []string{"", "identity", "gzip;q=0"} {
		req = httptest.NewRequest("GET", "/assets/index-abc12.js", nil)
		req.Header.Set("Accept-Encoding", ae)
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Header().Get("Content-Encoding") != "" || rec.Body.String() != string(plain) {
			t.Fatalf("Accept-Encoding %q: encoding %q", ae, rec.Header().Get("Content-Encoding"))
		}
	}

	// A matching If-None-Match answers 304 without a body.
	req = httptest.NewRequest("GET", "/assets/index-abc12.js", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
		t.Fatalf("conditional GET = %d with %d bytes", rec.Code, rec.Body.Len())
	}
	// Tiny files are not worth compressing.
	req = httptest.NewRequest("GET", "/assets/index-abc12.css", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Header().Get("Content-Encoding") != "" {
		t.Fatal("a 15-byte file was gzipped")
	}
}

// The embedded files are either a built console or the fallback that says how to
// build it: either way / and /widget.js answer.
func TestEmbeddedConsole(t *testing.T) {
	fsys, built := console.Files()
	h := newConsoleHandler(fsys, built)
	for _, p := range []string{"/", "/widget.js", "/login"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d (built=%v)", p, rec.Code, built)
		}
		if !built && p == "/" && !strings.Contains(rec.Body.String(), "make console") {
			t.Fatalf("fallback page does not say how to build: %s", rec.Body.String())
		}
	}
}
