package storage

import "syscall"

// diskSpace returns the bytes an unprivileged writer may still use on the file system of
// dir, and whether it is mounted read-only.
func diskSpace(dir string) (free uint64, readOnly bool, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return st.Bavail * uint64(st.Bsize), st.Flags&0x1 != 0, nil // ST_RDONLY
}
