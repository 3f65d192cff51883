package vmdk_test

import (
	"github.com/vmtrust/vmtrust/internal/disk"
	"github.com/vmtrust/vmtrust/internal/disk/vmdk"
)

// Package disk dispatches to this reader, so the assertion lives in an
// external test package to avoid an import cycle.
var _ disk.Image = (*vmdk.Image)(nil)
