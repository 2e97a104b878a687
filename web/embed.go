// Package web holds the portal (HTML, CSS, JS modules and images) that the
// gateway serves. The files are embedded at build time. static/assets/vendor
// holds the bundled mermaid and Markdown renderer (web/src), built by
// scripts/build-web.sh (make build) and not committed; without them the
// portal works and shows documentation and diagrams as plain source.
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Static returns the embedded portal files rooted at the static directory,
// so that "index.html" and "assets/app.js" are valid names.
func Static() (fs.FS, error) {
	return fs.Sub(static, "static")
}
