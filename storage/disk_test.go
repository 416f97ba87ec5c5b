package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/patronus-sdwan/patronus/storage"
)

// smallDisk mounts a tmpfs of size bytes for the test; outside Linux or without the right to
// mount it skips, except under CI=true, where it fails.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if runtime.GOOS != "linux" {
		t.Skip("tmpfs needs Linux")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		msg := "cannot mount a tmpfs (needs root): " + string(out)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// TestSQLiteOnAFullDiskIsNotWritable: CheckWritable, the readiness check, passes on a disk
// with room, fails with ErrUnavailable once the disk is full (where writes fail too, also as
// ErrUnavailable), and passes again once there is room, without reopening.
func TestSQLiteOnAFullDiskIsNotWritable(t *testing.T) {
	dir := smallDisk(t, "40m")
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(dir, "patronus.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckWritable(ctx); err != nil {
		t.Fatalf("on a disk with room: %v", err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break // the disk is full
		}
	}
	filler.Close()
	if err := db.CheckWritable(ctx); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("on a full disk: %v, want ErrUnavailable", err)
	}
	store := storage.NewStore(db)
	var writeErr error
	for i := 0; i < 200 && writeErr == nil; i++ { // until the WAL needs a page it cannot have
		writeErr = store.Sites().Create(ctx, &storage.Site{Name: fmt.Sprintf("site-%d", i), Description: strings.Repeat("x", 4096)})
	}
	if writeErr == nil {
		t.Error("200 writes of 4 KB succeeded on a full disk")
	} else if !errors.Is(writeErr, storage.ErrUnavailable) {
		t.Errorf("a write on the full disk: %v, want ErrUnavailable", writeErr)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckWritable(ctx); err != nil {
		t.Fatalf("after room was made: %v", err)
	}
}
