package server

import (
	"crypto/rand"
	"encoding/hex"
	"regexp"

	"github.com/labstack/echo/v4"
)

const ctxRequestID = "request_id"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestIDs gives every request an id, echoed in X-Request-Id and in
// every log line about it. An incoming id is kept only from a trusted
// proxy, so clients cannot forge lines into someone else's trail.
func requestIDs(trustIncoming bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			id := ""
			if trustIncoming {
				if in := c.Request().Header.Get(echo.HeaderXRequestID); requestIDPattern.MatchString(in) {
					id = in
				}
			}
			if id == "" {
				var b [12]byte
				_, _ = rand.Read(b[:])
				id = hex.EncodeToString(b[:])
			}
			c.Set(ctxRequestID, id)
			c.Response().Header().Set(echo.HeaderXRequestID, id)
			return next(c)
		}
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}
