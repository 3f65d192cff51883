//go:build !linux

package cache

import "os"

func writeBack(*os.File, int64, int64, int64, int64) {}
