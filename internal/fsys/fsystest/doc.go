// Package fsystest helps test code built on package fsys: MapFS is an
// in-memory fsys.FS with stable inode numbers for unit tests, and TestFS is
// the conformance suite every filesystem driver (ext4, XFS) passes, comparing
// the driver's view of an image built from a host directory (MakeTree) with
// that directory itself.
//
// It is for tests only. MapFS trusts its map; TestFS reads the host
// directory it is given and nothing else.
package fsystest
