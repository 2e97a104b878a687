package main

import (
	"context"
	"crypto/subtle"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// loginCSP allows the form to post to this provider and, since Chromium
// applies form-action to every redirect that follows a form post, to end
// at the client's redirect URIs.
func loginCSP(redirectURIs []string) string {
	actions := []string{"'self'"}
	for _, r := range redirectURIs {
		if u, err := url.Parse(r); err == nil && u.Host != "" {
			actions = append(actions, u.Scheme+"://"+u.Host)
		}
	}
	return "default-src 'none'; style-src 'unsafe-inline'; form-action " + strings.Join(actions, " ") + "; frame-ancestors 'none'"
}

const (
	msgBadLogin     = "Unknown user or wrong password."
	msgExpired      = "This sign-in request is unknown or has expired. Please start again from the application."
	msgBadForm      = "This form has expired or was not submitted from this page. Please start again from the application."
	csrfCookiePrefx = "devidp_csrf_"
	maxFormBytes    = 16 << 10
)

const loginHTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Playbook Studio dev sign-in</title>
<style>
body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2433;margin:0}
main{max-width:22rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12)}
h1{font-size:1.25rem;margin:0 0 1rem}
.dev{background:#fff4ce;border:1px solid #e6c44d;padding:.5rem .75rem;border-radius:4px;font-size:.85rem}
.err{background:#fde7e9;border:1px solid #e0808a;padding:.5rem .75rem;border-radius:4px}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;border:1px solid #b5bac4;border-radius:4px}
button{margin-top:1.5rem;width:100%;padding:.6rem;border:0;border-radius:4px;background:#2454d6;color:#fff;font-size:1rem;cursor:pointer}
</style>
</head>
<body>
<main>
<h1>Playbook Studio dev sign-in</h1>
<p class="dev">Development identity provider &mdash; for local runs and tests only. Do not use real credentials.</p>
{{if .ClientID}}<p>Signing in to <strong>{{.ClientID}}</strong>.</p>{{end}}
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
{{if .AuthRequestID}}<form method="post" action="/login">
<input type="hidden" name="authRequestID" value="{{.AuthRequestID}}">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>{{end}}
</main>
</body>
</html>
`

type loginPage struct {
	ClientID      string
	AuthRequestID string
	CSRF          string
	Username      string
	Error         string
}

// loginHandler serves GET and POST /login.
type loginHandler struct {
	store    *storage
	users    *userStore
	tmpl     *template.Template
	callback func(ctx context.Context, authRequestID string) string
	secure   bool // mark cookies Secure (https issuer)
	csp      string
	log      *slog.Logger
}

func newLoginHandler(store *storage, users *userStore, callback func(context.Context, string) string, secure bool, csp string, log *slog.Logger) (*loginHandler, error) {
	tmpl, err := template.New("login").Parse(loginHTML)
	if err != nil {
		return nil, err
	}
	return &loginHandler{store: store, users: users, tmpl: tmpl, callback: callback, secure: secure, csp: csp, log: log}, nil
}

func (h *loginHandler) render(w http.ResponseWriter, status int, p loginPage) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := h.tmpl.Execute(w, p); err != nil {
		h.log.Error("render login page", "err", err)
	}
}

func (h *loginHandler) csrfCookieName(authRequestID string) string {
	return csrfCookiePrefx + authRequestID
}

func (h *loginHandler) setCSRFCookie(w http.ResponseWriter, authRequestID, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     h.csrfCookieName(authRequestID),
		Value:    value,
		Path:     loginPath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   h.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// form shows the login form for the auth request in the query.
func (h *loginHandler) form(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get(queryAuthRequest)
	v, err := h.store.loginRequest(id)
	if err != nil {
		h.render(w, http.StatusBadRequest, loginPage{Error: msgExpired})
		return
	}
	// Double submit: the token is in the page and in a cookie, and both
	// must match the token bound to the auth request.
	h.setCSRFCookie(w, id, v.csrfToken, int(authRequestTTL.Seconds()))
	h.render(w, http.StatusOK, loginPage{ClientID: v.clientID, AuthRequestID: id, CSRF: v.csrfToken})
}

// submit checks the credentials and completes the auth request.
func (h *loginHandler) submit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		h.render(w, http.StatusBadRequest, loginPage{Error: msgBadForm})
		return
	}
	id := r.PostForm.Get(queryAuthRequest)
	v, err := h.store.loginRequest(id)
	if err != nil {
		h.render(w, http.StatusBadRequest, loginPage{Error: msgExpired})
		return
	}
	formToken := r.PostForm.Get("csrf")
	cookie, cookieErr := r.Cookie(h.csrfCookieName(id))
	if cookieErr != nil || subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(formToken)) != 1 ||
		!h.store.checkCSRF(id, formToken) {
		h.log.Warn("login rejected: CSRF check failed")
		h.render(w, http.StatusForbidden, loginPage{Error: msgBadForm})
		return
	}
	username := r.PostForm.Get("username")
	u, ok := h.users.authenticate(username, r.PostForm.Get("password"))
	if !ok {
		h.log.Info("login failed")
		h.render(w, http.StatusUnauthorized, loginPage{
			ClientID: v.clientID, AuthRequestID: id, CSRF: v.csrfToken, Username: username, Error: msgBadLogin,
		})
		return
	}
	if err := h.store.completeLogin(id, u.Sub); err != nil {
		h.render(w, http.StatusBadRequest, loginPage{Error: msgExpired})
		return
	}
	h.setCSRFCookie(w, id, "", -1)
	h.log.Info("login succeeded", "sub", u.Sub, "username", u.Username)
	http.Redirect(w, r, h.callback(r.Context(), id), http.StatusSeeOther)
}
