//go:build !linux

package cache

import "os"

func startWriteBack(*os.File, int64, int64) {}
