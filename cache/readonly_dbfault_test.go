package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// faultVariantEnv says which read-only case the helper checks: "file" (the
// file is read-only, its directory writable) or "dir" (both read-only).
const faultVariantEnv = "PIPEBIND_CACHE_FAULT_VARIANT"

// readOnlyChecks runs in a helper process that cannot write the database
// file at path (see TestFaultReadOnly) and prints "ok" when the cache
// behaves: Open fails with ErrReadOnly; OpenWith ReadOnly reads everything
// and refuses every write with ErrReadOnly, or, when SQLite cannot open the
// file read-only either, fails with ErrReadOnly too.
func readOnlyChecks(ctx context.Context, path string, w io.Writer) error {
	variant := os.Getenv(faultVariantEnv)
	if _, err := Open(ctx, path); !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("Open of a read-only file: %v, want ErrReadOnly", err)
	}
	db, err := OpenWith(ctx, path, Options{ReadOnly: true, BusyTimeout: time.Second})
	if variant == "dir" {
		// No -wal and -shm beside the file, and none can be created:
		// SQLite cannot read a WAL database.
		if err == nil {
			db.Close()
			return errors.New("OpenWith ReadOnly succeeded without -shm in a read-only directory")
		}
		if !errors.Is(err, ErrReadOnly) {
			return fmt.Errorf("OpenWith ReadOnly in a read-only directory: %v, want ErrReadOnly", err)
		}
		_, err = fmt.Fprintln(w, "ok")
		return err
	}
	if err != nil {
		return fmt.Errorf("OpenWith ReadOnly: %w", err)
	}
	defer db.Close()
	// Everything reads.
	if _, ok, err := db.Features(ctx, "example.org"); err != nil || !ok {
		return fmt.Errorf("Features: %v, %v", ok, err)
	}
	if _, ok, err := db.FastTokenFor(ctx, account); err != nil || !ok {
		return fmt.Errorf("FastTokenFor: %v, %v", ok, err)
	}
	if _, ok, err := db.ScramKeysFor(ctx, account, "SCRAM-SHA-256", []byte("salt"), 4096); err != nil || !ok {
		return fmt.Errorf("ScramKeysFor: %v, %v", ok, err)
	}
	if _, err := db.InstallationID(ctx); err != nil {
		return fmt.Errorf("InstallationID: %w", err)
	}
	msgs := archive("m", 300)
	check := func() error {
		n, err := db.CountMessages(ctx, account)
		if err != nil || n != 100 {
			return fmt.Errorf("CountMessages = %d, %v; want 100", n, err)
		}
		c, err := db.Cursor(ctx, account)
		if err != nil || c != msgs[99].StanzaID {
			return fmt.Errorf("Cursor = %q, %v", c, err)
		}
		return nil
	}
	if err := check(); err != nil {
		return err
	}
	// Every write fails with ErrReadOnly.
	_, _, err = db.AppendMessages(ctx, account, msgs[100:200], msgs[199].StanzaID)
	if !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("AppendMessages: %v, want ErrReadOnly", err)
	}
	if _, err := db.MarkDisplayed(ctx, account, msgs[0].Peer, msgs[0].StanzaID); !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("MarkDisplayed: %v, want ErrReadOnly", err)
	}
	if err := db.PutFeatures(ctx, fullFeatures()); !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("PutFeatures: %v, want ErrReadOnly", err)
	}
	if err := db.RecordLogin(ctx, LoginRecord{Account: account, Pin: "PLAIN"}); !errors.Is(err, ErrReadOnly) {
		return fmt.Errorf("RecordLogin: %v, want ErrReadOnly", err)
	}
	if err := check(); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, "ok")
	return err
}
