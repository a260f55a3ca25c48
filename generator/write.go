package generator

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
)

// Write brings the disk in line with files: it writes each file whose
// content differs from the disk (leaving unchanged files untouched, so their
// modification times stay put) and removes the files with nil Content. It
// returns the paths it changed, in the order of files.
func Write(files []File) (changed []string, err error) {
	for _, f := range files {
		old, readErr := os.ReadFile(f.Path)
		exists := readErr == nil
		if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
			return changed, readErr
		}
		switch {
		case f.Content == nil && !exists:
			continue
		case f.Content == nil:
			if err := os.Remove(f.Path); err != nil {
				return changed, err
			}
		case exists && bytes.Equal(old, f.Content):
			continue
		default:
			if err := os.WriteFile(f.Path, f.Content, 0o644); err != nil {
				return changed, err
			}
		}
		changed = append(changed, f.Path)
	}
	return changed, nil
}

// Diff compares files with the disk and returns the stale ones: files whose
// content differs, missing files, and files that should have been removed.
// It changes nothing.
func Diff(files []File) (stale []string, err error) {
	for _, f := range files {
		old, readErr := os.ReadFile(f.Path)
		exists := readErr == nil
		if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
			return stale, readErr
		}
		if f.Content == nil && exists || f.Content != nil && (!exists || !bytes.Equal(old, f.Content)) {
			stale = append(stale, f.Path)
		}
	}
	return stale, nil
}
