package cache

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/mattn/go-sqlite3"
)

// Errors for the faults of the database file that a caller branches on. They
// are always returned wrapped, around the SQLite or I/O error that caused
// them (which errors.As still finds, as a sqlite3.Error for example): test
// for them with errors.Is.
//
// What to do about each depends on what failed. The feature cache, SCRAM
// keys, FAST tokens and mechanism pins are a cache: a caller that cannot
// read or write them logs in without them. Messages, the sync cursor and
// read markers are data: a write that fails stores nothing (each write is
// one transaction that also moves the cursor), and the caller reports the
// error; the next sync fetches the same messages again.
var (
	// ErrLocked: another connection or process held the lock for longer
	// than the busy timeout (5 s by default). Retrying later can succeed.
	ErrLocked = errors.New("database is locked by another connection or process")
	// ErrReadOnly: the database file, or its directory, cannot be written
	// (permissions, a read-only file system, or a DB opened with
	// Options.ReadOnly).
	ErrReadOnly = errors.New("database is read-only")
	// ErrCorrupt: the file is not a SQLite database, or part of it is
	// malformed. See MoveAside.
	ErrCorrupt = errors.New("database file is corrupt")
	// ErrFull: the disk, or the size cap set with Options.MaxSize, is full.
	ErrFull = errors.New("database or disk is full")
	// ErrGone: the database file was deleted, renamed or replaced while the
	// DB had it open. Writes are refused because they would land in a file
	// no one can open again; open the path anew.
	ErrGone = errors.New("database file was deleted or replaced while open")
)

// faultError ties one of the errors above to its cause. Its text is the
// cause's, so wrapping changes no message.
type faultError struct {
	kind error // ErrLocked, ErrReadOnly, ...
	err  error
}

func (e *faultError) Error() string        { return e.err.Error() }
func (e *faultError) Unwrap() error        { return e.err }
func (e *faultError) Is(target error) bool { return target == e.kind }

// classify returns err wrapped with the fault it shows, if any, and err
// itself otherwise (nil for nil). An error already classified is returned as
// is.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var fe *faultError
	if errors.As(err, &fe) {
		return err
	}
	if kind := faultOf(err); kind != nil {
		return &faultError{kind: kind, err: err}
	}
	return err
}

// faultOf maps SQLite result codes and system errors to the faults above.
func faultOf(err error) error {
	var serr sqlite3.Error
	if errors.As(err, &serr) {
		switch serr.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked:
			return ErrLocked
		case sqlite3.ErrReadonly:
			if serr.ExtendedCode == sqlite3.ErrReadonlyDbMoved {
				return ErrGone
			}
			return ErrReadOnly
		case sqlite3.ErrPerm:
			return ErrReadOnly
		case sqlite3.ErrCorrupt, sqlite3.ErrNotADB:
			return ErrCorrupt
		case sqlite3.ErrFull:
			return ErrFull
		}
		return nil
	}
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return ErrFull
	case errors.Is(err, syscall.EROFS), errors.Is(err, fs.ErrPermission):
		return ErrReadOnly
	}
	return nil
}
