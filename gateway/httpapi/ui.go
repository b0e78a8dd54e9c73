package httpapi

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
)

// The UI is plain HTML, CSS and JavaScript: no build step, nothing fetched
// from outside (the CSP forbids it), so it works on an isolated site LAN.
//
//go:embed ui
var uiFiles embed.FS

func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(path.Clean(r.URL.Path), "/")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(uiFiles, "ui/"+name)
	if err != nil || strings.HasPrefix(name, ".") {
		http.Error(w, "404 not found", http.StatusNotFound)
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	// The binary is the version: revalidate instead of caching stale UI.
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
