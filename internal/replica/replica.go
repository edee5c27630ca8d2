// Package replica names a running crmsync process for the connection
// leases: a replica id that stays the same across restarts of one replica,
// and an incarnation unique to each process. A restarted process
// recognises the leases of its own dead predecessor (same replica id,
// another incarnation) and takes them over at once, instead of waiting
// for them to expire.
package replica

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/gofrs/flock"
)

// Identity is one process's name in lease owners:
// "<replica>/<incarnation>/<one sync>".
type Identity struct {
	// Replica is stable across restarts: configured (--replica-id), or
	// generated once into the data directory.
	Replica string
	// Incarnation is unique to this process.
	Incarnation string
	// Stable is false when no stable id could be had (the data directory
	// is locked by another live process): then Replica is random and no
	// lease is ever taken over.
	Stable bool
}

// Owner is the prefix of every lease owner this process writes.
func (id Identity) Owner() string { return id.Replica + "/" + id.Incarnation }

// Predecessor reports whether a lease owner was written by an earlier
// process of this replica (same replica id, another incarnation): a dead
// one, since one replica id runs one process at a time.
func (id Identity) Predecessor(owner string) bool {
	return id.Stable && strings.HasPrefix(owner, id.Replica+"/") && !strings.HasPrefix(owner, id.Owner()+"/")
}

var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidID reports whether s can be a replica id: 1 to 64 letters, digits,
// dots, hyphens and underscores, starting with a letter or digit.
func ValidID(s string) bool { return validID.MatchString(s) }

// Files in the data directory.
const (
	idFile   = "replica.id"
	lockFile = "replica.lock"
)

// Resolve returns this process's identity. A configured id is used as it
// is (the operator keeps it unique among running replicas: a Kubernetes
// StatefulSet's pod name, for example). Otherwise the id is read from, or
// generated into, dataDir/replica.id, held under an exclusive lock on
// dataDir/replica.lock for the process's life, which the OS drops when the
// process dies: a second live process on the same directory gets a random,
// unstable id instead. release ends the lock.
func Resolve(configured, dataDir string) (id Identity, release func(), err error) {
	id.Incarnation = fmt.Sprintf("%d-%s", os.Getpid(), randomHex(4))
	release = func() {}
	switch {
	case configured != "":
		if !ValidID(configured) {
			return id, release, fmt.Errorf("replica id %q: want 1 to 64 letters, digits, '.', '-' or '_'", configured)
		}
		id.Replica, id.Stable = configured, true
		return id, release, nil
	case dataDir == "":
		id.Replica = "ephemeral-" + randomHex(6)
		return id, release, nil
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return id, release, fmt.Errorf("replica id: data directory %s: %w", dataDir, err)
	}
	lock := flock.New(filepath.Join(dataDir, lockFile), flock.SetPermissions(0o600))
	locked, err := lock.TryLock()
	if err != nil {
		return id, release, fmt.Errorf("replica id: lock %s: %w", lock.Path(), err)
	}
	if !locked {
		id.Replica = "ephemeral-" + randomHex(6)
		return id, release, nil
	}
	release = func() { _ = lock.Unlock() }
	replica, err := readOrCreate(filepath.Join(dataDir, idFile))
	if err != nil {
		release()
		return id, func() {}, err
	}
	id.Replica, id.Stable = replica, true
	return id, release, nil
}

// readOrCreate returns the id stored at path, writing a new one first if
// there is none.
func readOrCreate(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(b)); ValidID(s) {
			return s, nil
		}
		return "", fmt.Errorf("replica id file %s: not a valid id (delete it to generate another)", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("replica id: %w", err)
	}
	s := "r-" + randomHex(6)
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("replica id: %w", err)
	}
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
