package workspace

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
)

// KeyFor derives a workspace's key from its owner: stable across restarts
// and replicas, safe in file, container and DNS names, and revealing
// nothing about the user.
func KeyFor(tenant, owner string) string {
	sum := sha256.Sum256([]byte(tenant + "\x00" + owner))
	return hex.EncodeToString(sum[:8])
}

func validKey(k string) bool {
	if len(k) != 16 {
		return false
	}
	for _, c := range k {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// CleanRelPath checks a folder path relative to the project folder: no
// absolute paths, no "..", no backslashes. "" and "." mean the project
// folder itself.
func CleanRelPath(p string) (string, bool) {
	if strings.ContainsAny(p, "\\\x00") || strings.HasPrefix(p, "/") {
		return "", false
	}
	c := path.Clean("/" + p)[1:]
	if c == "" {
		c = "."
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", false
		}
	}
	return c, true
}
