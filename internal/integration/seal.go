package integration

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the size of the master key and of every data key.
const KeySize = 32

// KeyFileName is the master key file created under DATA_DIR when no key is
// configured.
const KeyFileName = "secrets.key"

// errOpen is every failure to open a sealed blob or unwrap a key: which
// check failed is nobody's business but the log's.
var errOpen = errors.New("integration: sealed secrets do not open (wrong key, or a blob that belongs to another profile)")

// Keyring is the master key that wraps new data keys (the current one) and
// the keys that still open older ones (the previous, during a rotation).
// Each key is known by its id: the first 8 bytes of its SHA-256, in hex,
// stored beside every wrapped data key.
type Keyring struct {
	current string
	keys    map[string]cipher.AEAD
}

// NewKeyring builds a keyring from the current master key and any previous
// ones (each KeySize bytes).
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{keys: map[string]cipher.AEAD{}}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("integration: a master key must be %d bytes, got %d", KeySize, len(key))
		}
		a, err := newAEAD(key)
		if err != nil {
			return nil, err
		}
		id := KeyID(key)
		if i == 0 {
			k.current = id
		}
		if _, dup := k.keys[id]; !dup {
			k.keys[id] = a
		}
	}
	return k, nil
}

// KeyID is a key's id: the first 8 bytes of its SHA-256, hex. It tells
// which master key wrapped a data key without revealing the key.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// CurrentID is the id of the key new data keys are wrapped under.
func (k *Keyring) CurrentID() string { return k.current }

// Has reports whether the keyring holds the key of id.
func (k *Keyring) Has(id string) bool { _, ok := k.keys[id]; return ok }

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// binding is the additional data of both the sealed secrets and the
// wrapped data key: a blob or a key copied to another row, tenant or
// method does not open there. Length-prefixed so no two bindings collide.
func binding(purpose, tenant, id string, m Method) []byte {
	var b []byte
	for _, s := range []string{"pbs-integration-v1", purpose, tenant, id, string(m)} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	return b
}

func seal(a cipher.AEAD, plain, ad []byte) []byte {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plain)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return a.Seal(nonce, nonce, plain, ad)
}

func open(a cipher.AEAD, blob, ad []byte) ([]byte, error) {
	if len(blob) < a.NonceSize()+a.Overhead() {
		return nil, errOpen
	}
	out, err := a.Open(nil, blob[:a.NonceSize()], blob[a.NonceSize():], ad)
	if err != nil {
		return nil, errOpen
	}
	return out, nil
}

// Sealed is what a store keeps of a profile's secrets.
type Sealed struct {
	KeyID      string // the master key that wrapped DataKey
	WrappedKey []byte // the data key, under the master key
	Secrets    []byte // the secrets' JSON, under the data key
}

// Seal encrypts a profile's secrets under a fresh data key and wraps that
// key under the current master key, both bound to tenant, id and method.
func (k *Keyring) Seal(tenant, id string, m Method, s Secrets) (Sealed, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return Sealed{}, err
	}
	dk := make([]byte, KeySize)
	if _, err := rand.Read(dk); err != nil {
		return Sealed{}, err
	}
	da, err := newAEAD(dk)
	if err != nil {
		return Sealed{}, err
	}
	blob := seal(da, plain, binding("secrets", tenant, id, m))
	clear(plain)
	wrapped := seal(k.keys[k.current], dk, binding("data-key", tenant, id, m))
	clear(dk)
	return Sealed{KeyID: k.current, WrappedKey: wrapped, Secrets: blob}, nil
}

// Open unwraps the data key and decrypts the secrets of the profile
// (tenant, id, method) the blob must belong to.
func (k *Keyring) Open(tenant, id string, m Method, s Sealed) (Secrets, error) {
	dk, err := k.unwrap(tenant, id, m, s.KeyID, s.WrappedKey)
	if err != nil {
		return Secrets{}, err
	}
	da, err := newAEAD(dk)
	clear(dk)
	if err != nil {
		return Secrets{}, err
	}
	plain, err := open(da, s.Secrets, binding("secrets", tenant, id, m))
	if err != nil {
		return Secrets{}, err
	}
	var out Secrets
	err = json.Unmarshal(plain, &out)
	clear(plain)
	if err != nil {
		return Secrets{}, errOpen
	}
	return out, nil
}

func (k *Keyring) unwrap(tenant, id string, m Method, keyID string, wrapped []byte) ([]byte, error) {
	a, ok := k.keys[keyID]
	if !ok {
		return nil, fmt.Errorf("integration: the data key is wrapped under master key %s, which is not configured (set it as SECRETS_KEY_PREVIOUS until `gateway secrets rotate` has run)", keyID)
	}
	return open(a, wrapped, binding("data-key", tenant, id, m))
}

// Rewrap returns the data key re-wrapped under the current master key; the
// sealed secrets themselves do not change.
func (k *Keyring) Rewrap(tenant, id string, m Method, keyID string, wrapped []byte) (newID string, rewrapped []byte, err error) {
	dk, err := k.unwrap(tenant, id, m, keyID, wrapped)
	if err != nil {
		return "", nil, err
	}
	defer clear(dk)
	return k.current, seal(k.keys[k.current], dk, binding("data-key", tenant, id, m)), nil
}

// ParseKey reads a master key written as base64 (standard or URL, padded
// or not) or hex of KeySize bytes. The error never quotes the key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*KeySize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes as base64 or hex (e.g. `openssl rand -hex 32`), got %d characters that are neither", KeySize, len(s))
}

// NewKeyText is a fresh master key as hex, for a key file or SECRETS_KEY.
func NewKeyText() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ReadKeyFile reads a master key file, refusing one that its group or
// others may read or write: the key opens every profile's secrets.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("master key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o: its group and others must have no access (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("master key file: %w", err)
	}
	key, err := ParseKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", path, err)
	}
	return key, nil
}

// KeySource says where the master keys come from (SECRETS_KEY,
// SECRETS_KEY_FILE, SECRETS_KEY_PREVIOUS, SECRETS_KEY_PREVIOUS_FILE,
// DATA_DIR).
type KeySource struct {
	Key, KeyFile           string
	Previous, PreviousFile string
	DataDir                string
}

// LoadKeyring reads the current key from Key, else KeyFile, else
// DataDir/secrets.key (created with mode 0600 when missing), and the
// previous key, if any, from Previous or PreviousFile. created tells that
// a new key file was written.
func LoadKeyring(src KeySource) (k *Keyring, created bool, err error) {
	var current []byte
	switch {
	case src.Key != "" && src.KeyFile != "":
		return nil, false, errors.New("set SECRETS_KEY or SECRETS_KEY_FILE, not both")
	case src.Key != "":
		if current, err = ParseKey(src.Key); err != nil {
			return nil, false, fmt.Errorf("SECRETS_KEY: %w", err)
		}
	case src.KeyFile != "":
		if current, err = ReadKeyFile(src.KeyFile); err != nil {
			return nil, false, fmt.Errorf("SECRETS_KEY_FILE: %w", err)
		}
	default:
		if src.DataDir == "" {
			return nil, false, errors.New("no master key: set SECRETS_KEY, SECRETS_KEY_FILE or DATA_DIR")
		}
		path := filepath.Join(src.DataDir, KeyFileName)
		if current, created, err = loadOrCreateKeyFile(path); err != nil {
			return nil, false, err
		}
	}
	var previous [][]byte
	switch {
	case src.Previous != "" && src.PreviousFile != "":
		return nil, false, errors.New("set SECRETS_KEY_PREVIOUS or SECRETS_KEY_PREVIOUS_FILE, not both")
	case src.Previous != "":
		p, err := ParseKey(src.Previous)
		if err != nil {
			return nil, false, fmt.Errorf("SECRETS_KEY_PREVIOUS: %w", err)
		}
		previous = append(previous, p)
	case src.PreviousFile != "":
		p, err := ReadKeyFile(src.PreviousFile)
		if err != nil {
			return nil, false, fmt.Errorf("SECRETS_KEY_PREVIOUS_FILE: %w", err)
		}
		previous = append(previous, p)
	}
	k, err = NewKeyring(current, previous...)
	return k, created, err
}

func loadOrCreateKeyFile(path string) ([]byte, bool, error) {
	key, err := ReadKeyFile(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	// Written whole to a temporary file, then linked into place: link
	// fails when the name exists, so two gateways starting on one data dir
	// agree on one key, and none ever reads a half-written file.
	f, err := os.CreateTemp(filepath.Dir(path), ".secrets-key-*")
	if err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	defer os.Remove(f.Name())
	text := NewKeyText()
	_, werr := f.WriteString(text + "\n")
	merr := f.Chmod(0o600)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, merr, serr, cerr); err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		key, err := ReadKeyFile(path)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("master key file: %w", err)
	}
	key, err = ParseKey(text)
	return key, true, err
}
