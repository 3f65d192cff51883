package cli

import (
	"os"
	"runtime/debug"
)

// batchMemoryLimit is the heap a one-shot command may grow to before the
// garbage collector runs at all.
const batchMemoryLimit = 512 << 20

// batchGC tunes the garbage collector for a one-shot command that reads one
// document and exits: no collection until the heap nears batchMemoryLimit.
// Verifying a 10,000-image list allocates about 26 MB; collecting it as it
// grows costs more (stop-the-world preemption signals, on a VM especially)
// than it saves. Never used by long-running commands, and GOGC or
// GOMEMLIMIT set by the user win.
func batchGC() {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(batchMemoryLimit)
	debug.SetGCPercent(-1)
}
