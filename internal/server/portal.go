package server

import (
	"io/fs"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/playbookstudio/gateway/internal/apierror"
)

// handlePage serves the portal shell; the page routes itself on the
// client. It is personal (it is only served signed in), so no cache keeps it.
func handlePage(files fs.FS) echo.HandlerFunc {
	return func(c echo.Context) error {
		page, err := fs.ReadFile(files, "index.html")
		if err != nil {
			return err
		}
		c.Response().Header().Set("Cache-Control", "no-store")
		return c.HTMLBlob(http.StatusOK, page)
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
