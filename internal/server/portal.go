package server

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// handlePage serves the portal shell; the page routes itself on the
// client. No cache keeps it. csp replaces the host's policy (shellCSP).
func handlePage(files fs.FS, csp string) echo.HandlerFunc {
	return handleStaticPage(files, "index.html", csp)
}

// handleStaticPage serves one HTML file of the portal under its own
// Content-Security-Policy.
func handleStaticPage(files fs.FS, name, csp string) echo.HandlerFunc {
	return func(c echo.Context) error {
		page, err := fs.ReadFile(files, name)
		if err != nil {
			return err
		}
		h := c.Response().Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Security-Policy", csp)
		return c.HTMLBlob(http.StatusOK, page)
	}
}

// requirePageSessionOrFrame is requirePageSession, except for a page
// loaded in a frame (an outer portal): without a session it still gets the
// shell, which offers sign-in in a popup, since OpenID providers refuse to
// be framed and the redirect would end on their error inside the frame.
func requirePageSessionOrFrame(next echo.HandlerFunc) echo.HandlerFunc {
	toSignIn := requirePageSession(next)
	return func(c echo.Context) error {
		if sessionOf(c) == nil {
			switch c.Request().Header.Get("Sec-Fetch-Dest") {
			case "iframe", "frame":
				return next(c)
			}
		}
		return toSignIn(c)
	}
}

// handleEmbedConfig is GET /api/embed-config: the origins allowed to frame
// the portal (ALLOWED_FRAME_ANCESTORS), the only ones the portal's
// postMessage API talks to. Public: the frame needs it before sign-in, and
// the same origins are in every response's CSP anyway.
func handleEmbedConfig(origins []string) echo.HandlerFunc {
	list := append([]string{}, origins...)
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-cache")
		return c.JSON(http.StatusOK, map[string]any{"allowedOrigins": list})
	}
}

// handleAssets serves /assets/* from the embedded files, without directory
// listings.
func handleAssets(files fs.FS) echo.HandlerFunc {
	fileServer := http.FileServerFS(files)
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		if strings.HasSuffix(p, "/") {
			return apierror.New(http.StatusNotFound, "not_found", "There is no such file.")
		}
		if _, err := fs.Stat(files, strings.TrimPrefix(p, "/")); err != nil {
			return apierror.New(http.StatusNotFound, "not_found", "There is no such file.")
		}
		c.Response().Header().Set("Cache-Control", "no-cache")
		fileServer.ServeHTTP(c.Response(), c.Request())
		return nil
	}
}

func handleAPINotFound() echo.HandlerFunc {
	return func(c echo.Context) error {
		return apierror.New(http.StatusNotFound, "not_found", "There is no such API route.")
	}
}
