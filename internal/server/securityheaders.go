package server

import (
	"strings"

	"github.com/labstack/echo/v4"
)

// securityHeaders sets the headers every response of one host carries.
// The CSP is built once per host at start; frame-ancestors names the
// origins allowed to frame us (ALLOWED_FRAME_ANCESTORS), which replaces
// X-Frame-Options (it cannot list more than one origin).
func securityHeaders(csp string, hsts bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Response().Header()
			h.Set("Content-Security-Policy", csp)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
			h.Set("Cross-Origin-Resource-Policy", "same-origin")
			h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
			if hsts {
				h.Set("Strict-Transport-Security", "max-age=31536000")
			}
			return next(c)
		}
	}
}

// portalCSP allows only the portal's own files, frames only IDE hosts,
// and lets the sign-out form continue to the provider's end-session page
// (Chromium applies form-action to the redirect after a form post).
func portalCSP(ideFrameSource, issuerOrigin string, ancestors []string) string {
	return strings.Join([]string{
		"default-src 'self'",
		"script-src 'self'",
		"style-src 'self'",
		"img-src 'self' data:",
		"font-src 'self'",
		"connect-src 'self'",
		"frame-src " + ideFrameSource,
		"frame-ancestors " + strings.Join(append([]string{"'self'"}, ancestors...), " "),
		"form-action 'self' " + issuerOrigin,
		"base-uri 'none'",
		"object-src 'none'",
	}, "; ")
}

// shellCSP is the portal page's own policy: portalCSP, and frames of the
// portal's own origin besides the IDE hosts, for the diagram renderer
// (/render/mermaid). Other responses keep portalCSP.
func shellCSP(ideFrameSource, issuerOrigin string, ancestors []string) string {
	return strings.Replace(portalCSP(ideFrameSource, issuerOrigin, ancestors), "frame-src ", "frame-src 'self' ", 1)
}

// diagramCSP is the diagram renderer's policy. Mermaid lays a diagram out
// in a live document, writing a <style> element and style attributes into
// the SVG, so this one document (and no other) allows inline styles. It
// runs only the portal's own scripts, loads nothing else, connects
// nowhere, and only the portal frames it (ancestors: the outer portals
// that may frame the portal, since frame-ancestors checks every ancestor);
// the portal shows the SVG it returns as an image, where no script runs.
func diagramCSP(ancestors []string) string {
	return strings.Join([]string{
		"default-src 'none'",
		"script-src 'self'",
		"style-src 'self' 'unsafe-inline'",
		"img-src 'self' data:",
		"font-src 'self'",
		"frame-ancestors " + strings.Join(append([]string{"'self'"}, ancestors...), " "),
		"form-action 'none'",
		"base-uri 'none'",
		"object-src 'none'",
	}, "; ")
}

// ideCSP is what the gateway itself says on IDE hosts: only the portal
// and the configured outer portals may frame the IDE.
func ideCSP(portalOrigin string, ancestors []string) string {
	// 'self': the workbench frames its own origin (the extension host,
	// webviews), and frame-ancestors is checked against every ancestor.
	return "frame-ancestors 'self' " + strings.Join(append([]string{portalOrigin}, ancestors...), " ") + "; base-uri 'self'; object-src 'none'"
}
