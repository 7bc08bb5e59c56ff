package httpauth

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// bcryptPrefixes are the hash prefixes Ironic's http_basic accepts (ironic/common/auth_basic.py
// parse_entry): htpasswd -B writes $2y$, other bcrypt implementations $2a$ or $2b$.
var bcryptPrefixes = []string{"$2y$", "$2a$", "$2b$"}

// parseHtpasswd reads an Apache htpasswd file of "user:bcrypt-hash" lines. Blank lines and
// lines starting with '#' are skipped; surrounding whitespace is ignored, as Ironic does.
// Errors name the file and the line number and never contain the hash.
func parseHtpasswd(name string, data []byte) (map[string][]byte, error) {
	users := map[string][]byte{}
	firstLine := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd %s line %d: want user:bcrypt-hash", name, n)
		}
		if !hasBcryptPrefix(hash) {
			return nil, fmt.Errorf("htpasswd %s line %d (user %q): only bcrypt hashes ($2y$, $2a$, $2b$) are supported; create the entry with htpasswd -B", name, n, user)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd %s line %d (user %q): malformed bcrypt hash: %w", name, n, user, err)
		}
		if first, dup := firstLine[user]; dup {
			return nil, fmt.Errorf("htpasswd %s line %d: user %q already defined on line %d", name, n, user, first)
		}
		firstLine[user] = n
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read htpasswd %s: %w", name, err)
	}
	return users, nil
}

func hasBcryptPrefix(hash string) bool {
	for _, p := range bcryptPrefixes {
		if strings.HasPrefix(hash, p) {
			return true
		}
	}
	return false
}
