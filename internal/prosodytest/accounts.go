package prosodytest

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// iterationCount is Prosody's default_iteration_count for SCRAM-SHA-1,
// which internal_hashed uses for every new account.
const iterationCount = 10000

// writeAccounts registers users by writing their account files, in the
// format of Prosody's internal_hashed authentication and internal storage,
// under the data directory: what prosodyctl register writes, without
// starting one Lua process per user (about 0.1 s each, a minute and a half
// for a fleet of a thousand). Internal storage reads these files on every
// access, so Prosody needs no restart to see them.
//
// Users sharing a password share its salt and keys: the SCRAM derivation
// (PBKDF2, 10,000 iterations, about 2 ms) runs once per distinct password,
// on all cores. A password that is not printable ASCII, which Prosody would
// SASLprep first, goes through prosodyctl (Register) instead.
func (s *Server) writeAccounts(ctx context.Context, users map[string]string) error {
	dir := filepath.Join(s.Dir, "data", storageEncode(s.Domain), "accounts")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	var viaCtl []string
	byPassword := make(map[string][]string)
	for u, pw := range users {
		if !printableASCII(pw) {
			viaCtl = append(viaCtl, u)
			continue
		}
		byPassword[pw] = append(byPassword[pw], u)
	}
	now := time.Now().Unix()
	jobs := make(chan string)
	errs := make(chan error, len(byPassword))
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), max(len(byPassword), 1)) {
		wg.Go(func() {
			for pw := range jobs {
				errs <- writeAccountFiles(dir, byPassword[pw], pw, now)
			}
		})
	}
	for pw := range byPassword {
		jobs <- pw
	}
	close(jobs)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	s.mu.Lock()
	for pw, names := range byPassword {
		for _, u := range names {
			s.Users[u] = pw
		}
	}
	s.mu.Unlock()
	return s.registerWithCtl(ctx, viaCtl, users)
}

// registerWithCtl registers the named users with prosodyctl, in parallel.
func (s *Server) registerWithCtl(ctx context.Context, names []string, users map[string]string) error {
	errs := make(chan error, len(names))
	for _, u := range names {
		go func() { errs <- s.Register(ctx, u, users[u]) }()
	}
	var all []error
	for range names {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// writeAccountFiles writes the account file of each user in users, who all
// have password pw.
func writeAccountFiles(dir string, users []string, pw string, now int64) error {
	salt := newSalt()
	salted, err := pbkdf2.Key(sha1.New, pw, []byte(salt), iterationCount, sha1.Size)
	if err != nil {
		return fmt.Errorf("prosodytest: %w", err)
	}
	clientKey := hmacSHA1(salted, "Client Key")
	storedKey := sha1.Sum(clientKey)
	serverKey := hmacSHA1(salted, "Server Key")
	body := fmt.Sprintf("return {\n\t[\"salt\"] = %s;\n\t[\"iteration_count\"] = %d;\n"+
		"\t[\"stored_key\"] = %s;\n\t[\"server_key\"] = %s;\n\t[\"created\"] = %d;\n\t[\"updated\"] = %d;\n};\n",
		lua(salt), iterationCount, lua(hex.EncodeToString(storedKey[:])), lua(hex.EncodeToString(serverKey)), now, now)
	for _, u := range users {
		file := filepath.Join(dir, storageEncode(u)+".dat")
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
			return fmt.Errorf("prosodytest: account %s: %w", u, err)
		}
		if err := os.Rename(tmp, file); err != nil {
			return fmt.Errorf("prosodytest: account %s: %w", u, err)
		}
	}
	return nil
}

func hmacSHA1(key []byte, msg string) []byte {
	m := hmac.New(sha1.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// newSalt returns a random UUID, the form of Prosody's own salts.
func newSalt() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
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

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
