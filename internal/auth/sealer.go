package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Sealer encrypts and authenticates short-lived cookie values (the
// sign-in flow's state, nonce and PKCE verifier) with AES-256-GCM. The
// cookie's name is bound in as associated data, so a value cannot be moved
// from one cookie to another, and the expiry travels inside the ciphertext,
// so a replayed old cookie is refused even if the browser kept it.
type Sealer struct {
	aead cipher.AEAD
	now  func() time.Time
}

// ErrBadCookie covers every way a sealed value can fail to open; callers
// learn nothing about which check failed.
var ErrBadCookie = errors.New("auth: cookie is malformed, tampered with or expired")

// maxSealedLen bounds what Open will even try to decode.
const maxSealedLen = 4096

// NewSealer derives the cookie key from secret (at least 32 bytes).
func NewSealer(secret []byte, now func() time.Time) (*Sealer, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("auth: cookie secret must be at least 32 bytes, got %d", len(secret))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "playbook-studio cookie v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Sealer{aead: aead, now: now}, nil
}

// Seal returns a cookie-safe string holding plaintext until ttl passes.
func (s *Sealer) Seal(name string, plaintext []byte, ttl time.Duration) (string, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+8+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	msg := binary.BigEndian.AppendUint64(nil, uint64(s.now().Add(ttl).Unix()))
	msg = append(msg, plaintext...)
	out := s.aead.Seal(nonce, nonce, msg, []byte(name))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open reverses Seal for the cookie called name.
func (s *Sealer) Open(name, value string) ([]byte, error) {
	if len(value) == 0 || len(value) > maxSealedLen {
		return nil, ErrBadCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	// The decoder skips CR and LF and ignores a last character's unused
	// bits, so several strings decode to the same bytes; only the one Seal
	// wrote is accepted, so that a changed cookie value never opens.
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != value {
		return nil, ErrBadCookie
	}
	ns := s.aead.NonceSize()
	if len(raw) < ns+s.aead.Overhead()+8 {
		return nil, ErrBadCookie
	}
	msg, err := s.aead.Open(nil, raw[:ns], raw[ns:], []byte(name))
	if err != nil || len(msg) < 8 {
		return nil, ErrBadCookie
	}
	expires := int64(binary.BigEndian.Uint64(msg[:8]))
	if s.now().Unix() >= expires {
		return nil, ErrBadCookie
	}
	return msg[8:], nil
}
