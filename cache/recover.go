package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// MoveAside renames the database file at path, with the -wal and -shm files
// beside it, to path+".corrupt-"+a UTC timestamp (plus "-wal" and "-shm"),
// and returns the new path of the database file. Nothing is deleted: a
// corrupt file may still hold messages that a repair tool can save, and the
// WAL moves with it, since SQLite pairs the two by name.
//
// It is meant for a file that Open reported as ErrCorrupt; the next Open of
// path then creates a fresh database. Processes that still have the old file
// open keep reading it, and their writes fail with ErrGone.
//
// The -wal and -shm files are moved first, so that a fresh database at path
// is never paired with the old WAL (SQLite would replay its pages into it);
// any that appear meanwhile are moved too, to the new path plus ".late-wal"
// and ".late-shm".
func MoveAside(path string) (string, error) {
	if _, err := os.Lstat(path); err != nil {
		return "", fmt.Errorf("cache: move aside: %w", err)
	}
	base := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405Z")
	dest := base
	for i := 2; ; i++ {
		_, err := os.Lstat(dest)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("cache: move aside: %w", err)
		}
		if i > 100 {
			return "", fmt.Errorf("cache: move aside: %s and 99 more names exist", base)
		}
		dest = base + "-" + strconv.Itoa(i)
	}
	moveCompanions := func(to string) error {
		for _, suffix := range []string{"-wal", "-shm"} {
			err := os.Rename(path+suffix, to+suffix)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	if err := moveCompanions(dest); err != nil {
		return "", fmt.Errorf("cache: move aside: %w", err)
	}
	if err := os.Rename(path, dest); err != nil {
		return "", fmt.Errorf("cache: move aside: %w", err)
	}
	// Another process opened the old file between the two renames: keep
	// what it made, under names that do not replace the first ones.
	if err := moveCompanions(dest + ".late"); err != nil {
		return dest, fmt.Errorf("cache: move aside: %w", err)
	}
	return dest, nil
}
