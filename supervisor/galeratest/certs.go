package galeratest

import (
	"fmt"
	"os"

	"github.com/galera-supervisor/galera-supervisor/internal/testutil"
)

// CA is a certificate authority made by a test (testutil.CA) whose keys
// mariadbd's user can read.
type CA struct{ *testutil.CA }

// NewCA makes a CA called name and writes its certificate to dir/name.pem.
func NewCA(dir, name string) (*CA, error) {
	ca, err := testutil.NewCA(dir, name)
	if err != nil {
		return nil, err
	}
	return &CA{ca}, nil
}

// Issue is testutil.CA.Issue with the key given to the mysql user, which
// alone (and root) may read it.
func (ca *CA) Issue(dir, name string, ips ...string) (cert, key string, err error) {
	cert, key, err = ca.CA.Issue(dir, name, ips...)
	if err != nil {
		return "", "", err
	}
	uid, gid, err := runUser()
	if err != nil {
		return "", "", err
	}
	if err := os.Chown(key, uid, gid); err != nil {
		return "", "", fmt.Errorf("chown %s: %w", key, err)
	}
	return cert, key, nil
}
