// Package web holds the portal shell (HTML, CSS, JS and images) that the
// gateway serves to signed-in users. The files are embedded at build time.
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
