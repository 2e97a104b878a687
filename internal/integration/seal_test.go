package integration_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/playbookstudio/gateway/internal/audit"
	"github.com/playbookstudio/gateway/internal/integration"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, integration.KeySize) }

func keyring(t *testing.T, current []byte, previous ...[]byte) *integration.Keyring {
	t.Helper()
	k, err := integration.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpensOnlyWhereItBelongs(t *testing.T) {
	k := keyring(t, key(1))
	sec := integration.Secrets{APIKey: "the-key"}
	s, err := k.Seal("t1", "id1", integration.APIKey, sec)
	if err != nil {
		t.Fatal(err)
	}
	if s.KeyID != integration.KeyID(key(1)) || len(s.KeyID) != 16 {
		t.Errorf("key id = %q", s.KeyID)
	}
	if bytes.Contains(s.Secrets, []byte("the-key")) || bytes.Contains(s.WrappedKey, []byte("the-key")) {
		t.Fatal("the secret is in the clear")
	}
	got, err := k.Open("t1", "id1", integration.APIKey, s)
	if err != nil || got != sec {
		t.Fatalf("open = %+v, %v", got, err)
	}
	other, _ := k.Seal("t1", "id2", integration.APIKey, integration.Secrets{APIKey: "other"})
	for name, try := range map[string]func() error{
		"another tenant":  func() error { _, err := k.Open("t2", "id1", integration.APIKey, s); return err },
		"another profile": func() error { _, err := k.Open("t1", "id2", integration.APIKey, s); return err },
		"another method":  func() error { _, err := k.Open("t1", "id1", integration.Bearer, s); return err },
		// A row's blob with another row's wrapped key, and the reverse.
		"swapped blob": func() error {
			_, err := k.Open("t1", "id2", integration.APIKey, integration.Sealed{KeyID: other.KeyID, WrappedKey: other.WrappedKey, Secrets: s.Secrets})
			return err
		},
		"swapped key": func() error {
			_, err := k.Open("t1", "id1", integration.APIKey, integration.Sealed{KeyID: s.KeyID, WrappedKey: other.WrappedKey, Secrets: s.Secrets})
			return err
		},
		"another master key": func() error {
			_, err := keyring(t, key(2)).Open("t1", "id1", integration.APIKey, s)
			return err
		},
		"flipped bit": func() error {
			b := bytes.Clone(s.Secrets)
			b[len(b)-1] ^= 1
			_, err := k.Open("t1", "id1", integration.APIKey, integration.Sealed{KeyID: s.KeyID, WrappedKey: s.WrappedKey, Secrets: b})
			return err
		},
		"truncated": func() error {
			_, err := k.Open("t1", "id1", integration.APIKey, integration.Sealed{KeyID: s.KeyID, WrappedKey: s.WrappedKey[:5], Secrets: s.Secrets})
			return err
		},
	} {
		if err := try(); err == nil {
			t.Errorf("%s: opened", name)
		} else if strings.Contains(err.Error(), "the-key") {
			t.Errorf("%s: the error quotes the secret: %v", name, err)
		}
	}
	// Fresh data key and nonce each time: two seals differ.
	s2, _ := k.Seal("t1", "id1", integration.APIKey, sec)
	if bytes.Equal(s.WrappedKey, s2.WrappedKey) || bytes.Equal(s.Secrets, s2.Secrets) {
		t.Error("two seals of the same secrets are equal")
	}
}

func TestParseKey(t *testing.T) {
	raw := key(9)
	for _, s := range []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), " " + hex.EncodeToString(raw) + "\n"} {
		got, err := integration.ParseKey(s)
		if err != nil || !bytes.Equal(got, raw) {
			t.Errorf("ParseKey(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "short", hex.EncodeToString(raw[:31]), base64.StdEncoding.EncodeToString(append(raw, 1)), strings.Repeat("z", 64)} {
		_, err := integration.ParseKey(s)
		if err == nil {
			t.Errorf("ParseKey(%q) accepted", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("the error quotes the key: %v", err)
		}
	}
}

func TestLoadKeyringKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, created, err := integration.LoadKeyring(integration.KeySource{DataDir: dir})
	if err != nil || !created {
		t.Fatalf("first start = %v, %v", created, err)
	}
	path := filepath.Join(dir, integration.KeyFileName)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file = %v, %v", fi, err)
	}
	k2, created, err := integration.LoadKeyring(integration.KeySource{DataDir: dir})
	if err != nil || created || k2.CurrentID() != k.CurrentID() {
		t.Fatalf("second start = %v, %v, same key %v", created, err, k2.CurrentID() == k.CurrentID())
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660} {
		os.Chmod(path, mode)
		if _, _, err := integration.LoadKeyring(integration.KeySource{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v, want a refusal", mode, err)
		}
		if _, _, err := integration.LoadKeyring(integration.KeySource{KeyFile: path}); err == nil {
			t.Errorf("SECRETS_KEY_FILE of mode %o accepted", mode)
		}
	}
	os.Chmod(path, 0o400)
	if k3, _, err := integration.LoadKeyring(integration.KeySource{KeyFile: path}); err != nil || k3.CurrentID() != k.CurrentID() {
		t.Errorf("SECRETS_KEY_FILE = %v", err)
	}

	hexKey := hex.EncodeToString(key(3))
	k4, created, err := integration.LoadKeyring(integration.KeySource{Key: hexKey, Previous: base64.StdEncoding.EncodeToString(key(4)), DataDir: t.TempDir()})
	if err != nil || created || k4.CurrentID() != integration.KeyID(key(3)) || !k4.Has(integration.KeyID(key(4))) {
		t.Errorf("SECRETS_KEY + previous = %v, %v", created, err)
	}
	if _, _, err := integration.LoadKeyring(integration.KeySource{Key: "nope"}); err == nil || !strings.Contains(err.Error(), "SECRETS_KEY") {
		t.Errorf("bad SECRETS_KEY: %v", err)
	}
	if _, _, err := integration.LoadKeyring(integration.KeySource{Key: hexKey, KeyFile: path}); err == nil {
		t.Error("both SECRETS_KEY and SECRETS_KEY_FILE accepted")
	}
}

func newService(t *testing.T, store integration.Store, keys *integration.Keyring) *integration.Service {
	t.Helper()
	al, _ := audit.NewMemory(slog.New(slog.DiscardHandler), nil)
	s, err := integration.NewService(integration.ServiceConfig{Store: store, Keys: keys, Audit: al, Log: slog.New(slog.DiscardHandler), Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestRotation: with old and new keys configured, profiles sealed under
// either open; Rewrap moves every data key under the new one, is
// idempotent, and afterwards the new key alone opens them all.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "integrations.db")
	store := openSQLite(t, path)
	old, cur := key(1), key(2)
	before := newService(t, store, keyring(t, old))
	for i, tenant := range []string{"t1", "t1", "t2"} {
		if _, err := before.Create(ctx, integration.Actor{Tenant: tenant, UserID: "u"}, integration.CreateRequest{
			Name: "p" + string(rune('a'+i)), BaseURL: "https://x.example.com", AuthMethod: integration.Bearer,
			Secrets: integration.Secrets{Token: "tok-" + string(rune('a'+i))}}); err != nil {
			t.Fatal(err)
		}
	}
	both := newService(t, store, keyring(t, cur, old))
	// Written during the rotation: under the new key already.
	if _, err := both.Create(ctx, integration.Actor{Tenant: "t2", UserID: "u"}, integration.CreateRequest{
		Name: "pd", BaseURL: "https://x.example.com", AuthMethod: integration.Bearer, Secrets: integration.Secrets{Token: "tok-d"}}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range [][2]string{{"t1", "pa"}, {"t1", "pb"}, {"t2", "pc"}, {"t2", "pd"}} {
		if o, err := both.Open(ctx, tn[0], tn[1]); err != nil || o.Secrets.Token != "tok-"+tn[1][1:] {
			t.Errorf("open %v with both keys = %v", tn, err)
		}
	}
	if _, err := newService(t, store, keyring(t, cur)).Open(ctx, "t1", "pa"); err == nil {
		t.Error("the new key alone opens a key wrapped under the old one before rotation")
	}
	res, err := both.Rewrap(ctx)
	if err != nil || res.Rewrapped != 3 || res.Failed != 0 {
		t.Fatalf("rewrap = %+v, %v", res, err)
	}
	again, err := both.Rewrap(ctx)
	if err != nil || again != (integration.RewrapResult{}) {
		t.Errorf("second rewrap = %+v, %v; want nothing to do", again, err)
	}
	after := newService(t, store, keyring(t, cur))
	for _, tn := range [][2]string{{"t1", "pa"}, {"t1", "pb"}, {"t2", "pc"}, {"t2", "pd"}} {
		if o, err := after.Open(ctx, tn[0], tn[1]); err != nil || o.Secrets.Token != "tok-"+tn[1][1:] {
			t.Errorf("open %v with the new key alone = %v", tn, err)
		}
	}
	// A key nobody configured: counted as failed, the rest still done.
	stranger := newService(t, store, keyring(t, key(3)))
	res, err = stranger.Rewrap(ctx)
	if err != nil || res.Failed != 4 || res.Rewrapped != 0 {
		t.Errorf("rewrap without the old key = %+v, %v", res, err)
	}
	if _, err := stranger.Open(ctx, "t1", "pa"); err == nil || strings.Contains(err.Error(), "tok-") {
		t.Errorf("open under an unknown key = %v", err)
	}
	var notFound error = integration.ErrNotFound
	if _, err := after.Open(ctx, "t1", "nope"); !errors.Is(err, notFound) {
		t.Errorf("open unknown = %v", err)
	}
}

func BenchmarkKeyringOpen(b *testing.B) {
	k, _ := integration.NewKeyring(key(5))
	s, _ := k.Seal("t", "id", integration.Basic, integration.Secrets{Password: "p"})
	for b.Loop() {
		if _, err := k.Open("t", "id", integration.Basic, s); err != nil {
			b.Fatal(err)
		}
	}
}
