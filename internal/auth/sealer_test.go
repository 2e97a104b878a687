package auth

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock shared by the tests of this package.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// A whole second, so that expiry boundaries (kept in Unix seconds) are exact.
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestSealer(t testing.TB, secret []byte, now func() time.Time) *Sealer {
	t.Helper()
	s, err := NewSealer(secret, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSeal(t testing.TB, s *Sealer, name string, plaintext []byte, ttl time.Duration) string {
	t.Helper()
	v, err := s.Seal(name, plaintext, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestSealerRoundTrip(t *testing.T) {
	s := newTestSealer(t, testSecret, nil)
	for _, tc := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"text", []byte(`{"s":"state","n":"nonce","v":"verifier","r":"/playbooks"}`)},
		{"binary", []byte{0, 1, 2, 0xff, 0xfe, '\n', '"'}},
		{"large", bytes.Repeat([]byte("x"), 2048)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mustSeal(t, s, "pbs_login_abc", tc.plaintext, time.Minute)
			for _, r := range v {
				if !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", r) {
					t.Fatalf("sealed value %q holds %q, not cookie-safe", v, r)
				}
			}
			if bytes.Contains([]byte(v), tc.plaintext) && len(tc.plaintext) > 4 {
				t.Fatalf("sealed value shows the plaintext")
			}
			got, err := s.Open("pbs_login_abc", v)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
			// A second seal of the same plaintext differs (random nonce).
			if v2 := mustSeal(t, s, "pbs_login_abc", tc.plaintext, time.Minute); v2 == v {
				t.Fatalf("two seals of the same plaintext are equal: %q", v)
			}
		})
	}
}

func TestSealerRefusesOtherCookieName(t *testing.T) {
	s := newTestSealer(t, testSecret, nil)
	v := mustSeal(t, s, "pbs_login_aaaaaaaaaaaa", []byte("secret"), time.Minute)
	for _, name := range []string{"pbs_login_bbbbbbbbbbbb", "", "pbs_login_aaaaaaaaaaaa ", "PBS_LOGIN_AAAAAAAAAAAA", "pbs_session"} {
		t.Run(name, func(t *testing.T) {
			if got, err := s.Open(name, v); !errors.Is(err, ErrBadCookie) || got != nil {
				t.Fatalf("Open under %q = %q, %v; want ErrBadCookie", name, got, err)
			}
		})
	}
}

func TestSealerRefusesTamperedValue(t *testing.T) {
	s := newTestSealer(t, testSecret, nil)
	const name = "pbs_login_x"
	// Plaintext lengths give every remainder of the base64 length mod 4, so
	// the last character sometimes carries unused bits.
	for _, n := range []int{0, 1, 2, 3, 10, 11, 12} {
		t.Run(fmt.Sprintf("plaintext %d bytes", n), func(t *testing.T) {
			testTamperedValue(t, s, name, n)
		})
	}
}

func testTamperedValue(t *testing.T, s *Sealer, name string, n int) {
	plaintext := bytes.Repeat([]byte{'p'}, n)
	v := mustSeal(t, s, name, plaintext, time.Hour)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

	t.Run("each character replaced", func(t *testing.T) {
		for i := range len(v) {
			for _, c := range []byte(alphabet + "+/=.!~ \n") {
				if c == v[i] {
					continue
				}
				tampered := v[:i] + string(c) + v[i+1:]
				if got, err := s.Open(name, tampered); !errors.Is(err, ErrBadCookie) {
					t.Fatalf("len %d: character %d replaced by %q opened: %q, %v", n, i, c, got, err)
				}
			}
		}
	})
	t.Run("each bit of the decoded bytes flipped", func(t *testing.T) {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			for bit := range 8 {
				b := bytes.Clone(raw)
				b[i] ^= 1 << bit
				if got, err := s.Open(name, base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrBadCookie) {
					t.Fatalf("len %d: byte %d bit %d flipped opened: %q, %v", n, i, bit, got, err)
				}
			}
		}
	})
	t.Run("truncated, extended, spliced", func(t *testing.T) {
		for i := range len(v) {
			if _, err := s.Open(name, v[:i]); !errors.Is(err, ErrBadCookie) {
				t.Fatalf("len %d: truncated to %d opened", n, i)
			}
		}
		for _, tampered := range []string{
			v + "A", v + "AA", v + "AAAA", "A" + v, "AAAA" + v,
			v[:len(v)/2] + "\n" + v[len(v)/2:], // the decoder would skip the newline
			v[:len(v)/2] + "\r" + v[len(v)/2:],
			v + "\n", v + "=", v + "==",
		} {
			if _, err := s.Open(name, tampered); !errors.Is(err, ErrBadCookie) {
				t.Fatalf("len %d: %q opened", n, tampered)
			}
		}
	})
}

func TestSealerExpiry(t *testing.T) {
	clock := newFakeClock()
	s := newTestSealer(t, testSecret, clock.Now)
	v := mustSeal(t, s, "c", []byte("x"), 10*time.Minute)

	clock.Advance(10*time.Minute - time.Second)
	if _, err := s.Open("c", v); err != nil {
		t.Fatalf("Open a second before expiry: %v", err)
	}
	clock.Advance(time.Second)
	if _, err := s.Open("c", v); !errors.Is(err, ErrBadCookie) {
		t.Fatalf("Open at expiry: %v, want ErrBadCookie", err)
	}
	clock.Advance(24 * time.Hour)
	if _, err := s.Open("c", v); !errors.Is(err, ErrBadCookie) {
		t.Fatalf("Open a day later: %v, want ErrBadCookie", err)
	}

	for _, ttl := range []time.Duration{0, -time.Second, -time.Hour} {
		if _, err := s.Open("c", mustSeal(t, s, "c", []byte("x"), ttl)); !errors.Is(err, ErrBadCookie) {
			t.Fatalf("ttl %v: Open = %v, want ErrBadCookie", ttl, err)
		}
	}
}

func TestSealerRefusesOtherSecret(t *testing.T) {
	a := newTestSealer(t, testSecret, nil)
	v := mustSeal(t, a, "c", []byte("x"), time.Minute)
	for _, secret := range [][]byte{
		[]byte("0123456789abcdef0123456789abcdeF"),
		[]byte("0123456789abcdef0123456789abcdef0"), // a longer secret is another key
		bytes.Repeat([]byte{0}, 32),
	} {
		b := newTestSealer(t, secret, nil)
		if _, err := b.Open("c", v); !errors.Is(err, ErrBadCookie) {
			t.Fatalf("secret %q opened a value sealed under another: %v", secret, err)
		}
	}
	// The same secret in a new Sealer (another replica, a restart) opens it.
	if _, err := newTestSealer(t, bytes.Clone(testSecret), nil).Open("c", v); err != nil {
		t.Fatalf("same secret, new sealer: %v", err)
	}
}

func TestNewSealerSecretLength(t *testing.T) {
	for _, tc := range []struct {
		n  int
		ok bool
	}{{0, false}, {1, false}, {16, false}, {31, false}, {32, true}, {64, true}} {
		s, err := NewSealer(bytes.Repeat([]byte{'k'}, tc.n), nil)
		if tc.ok != (err == nil) || tc.ok != (s != nil) {
			t.Errorf("NewSealer(%d bytes) = %v, %v; want ok=%v", tc.n, s, err, tc.ok)
		}
	}
	if _, err := NewSealer(nil, nil); err == nil {
		t.Error("NewSealer(nil) succeeded")
	}
}

func TestSealerRefusesGarbage(t *testing.T) {
	s := newTestSealer(t, testSecret, nil)
	valid := mustSeal(t, s, "c", []byte("x"), time.Minute)
	for _, tc := range []struct{ name, value string }{
		{"empty", ""},
		{"one char", "A"},
		{"not base64", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"},
		{"std alphabet", strings.NewReplacer("-", "+", "_", "/").Replace(valid) + "+/"},
		{"padded", valid + strings.Repeat("=", (4-len(valid)%4)%4+4)},
		{"short base64", base64.RawURLEncoding.EncodeToString(make([]byte, 35))},
		{"zero bytes, right length", base64.RawURLEncoding.EncodeToString(make([]byte, 64))},
		{"random base64", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0"},
		{"just over the limit", strings.Repeat("A", maxSealedLen+1)},
		{"huge", strings.Repeat("A", 1<<20)},
		{"huge valid prefix", valid + strings.Repeat("A", 1<<16)},
		{"NUL", "\x00"},
		{"UTF-8", "ééééééééééééééééééééééééééééééééééééééééééé"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := s.Open("c", tc.value); !errors.Is(err, ErrBadCookie) || got != nil {
				t.Fatalf("Open = %q, %v; want nil, ErrBadCookie", got, err)
			}
		})
	}
}

func TestSealerConcurrentUse(t *testing.T) {
	s := newTestSealer(t, testSecret, nil)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				p := []byte{byte(i), byte(j)}
				v, err := s.Seal("c", p, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := s.Open("c", v)
				if err != nil || !bytes.Equal(got, p) {
					t.Errorf("Open = %v, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzSealerOpen(f *testing.F) {
	// A fixed key and a clock that does not move: only the fuzzed value varies.
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	s := newTestSealer(f, testSecret, func() time.Time { return at })
	const name = "pbs_login_0123456789ab"
	plaintext := []byte(`{"s":"state","n":"nonce","v":"verifier","r":"/"}`)
	valid := mustSeal(f, s, name, plaintext, time.Hour)

	f.Add(valid)
	for _, n := range []int{0, 1, 4, 16, 27, 28, 36, 37, len(valid) - 2, len(valid) - 1} {
		f.Add(valid[:n])
	}
	f.Add(valid + "A")
	f.Add(valid[1:])
	f.Add("q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJCrze8SNFZ4kKvN7xI0")
	f.Add(base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xa5}, 100)))
	f.Add("")
	f.Add("====")

	f.Fuzz(func(t *testing.T, value string) {
		got, err := s.Open(name, value)
		if err != nil {
			if !errors.Is(err, ErrBadCookie) || got != nil {
				t.Fatalf("Open(%q) = %q, %v: want nil, ErrBadCookie", value, got, err)
			}
			return
		}
		// Only values Seal wrote open. Seeds are sealed again in every fuzz
		// worker (random nonces), so the value itself may differ from this
		// process's valid; what it carries may not.
		if !bytes.Equal(got, plaintext) {
			t.Fatalf("Open(%q) = %q: a value Seal did not write opened", value, got)
		}
		if raw, err := base64.RawURLEncoding.DecodeString(value); err != nil || base64.RawURLEncoding.EncodeToString(raw) != value {
			t.Fatalf("Open accepted a non-canonical encoding %q", value)
		}
	})
}
