package prosodytest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// writeAccounts registers users by writing their account files under the
// data directory, in the format of Prosody's internal storage, with the
// password in clear: Prosody's internal_hashed reads such an account (as
// left by internal_plain) and replaces the password with its salted SCRAM
// keys at the account's first login, SASLprep and PBKDF2 included, in its
// own process. prosodyctl register would start one Lua process per user
// (about 0.1 s each, a minute and a half for a fleet of a thousand), and
// deriving the keys here would cost a PBKDF2 per user in the test process
// (25 ms each under the race detector). Internal storage reads these files
// on every access, so Prosody needs no restart to see them. User names
// must be as Prosody normalizes them (lower case).
func (s *Server) writeAccounts(users map[string]string) error {
	dir := filepath.Join(s.Dir, "data", storageEncode(s.Domain), "accounts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	now := time.Now().Unix()
	for u, pw := range users {
		if u != strings.ToLower(u) {
			// Prosody looks accounts up by their nodeprep'd name.
			return fmt.Errorf("prosodytest: user %q: user names must be lower case", u)
		}
		body := fmt.Sprintf("return {\n\t[\"password\"] = %s;\n\t[\"created\"] = %d;\n};\n", lua(pw), now)
		file := filepath.Join(dir, storageEncode(u)+".dat")
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			return fmt.Errorf("prosodytest: account %s: %w", u, err)
		}
		if err := os.Rename(tmp, file); err != nil {
			return fmt.Errorf("prosodytest: account %s: %w", u, err)
		}
		s.mu.Lock()
		s.Users[u] = pw
		s.mu.Unlock()
	}
	return nil
}

// storageEncode is the encoding of host and user names in the paths of
// Prosody's internal storage (util/datamanager.lua): every byte that is
// not an ASCII letter or digit becomes %xx.
func storageEncode(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	return b.String()
}
