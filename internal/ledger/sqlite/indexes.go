package sqlite

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmtrust/vmtrust/internal/ledger"
)

// maxTimelineRow bounds one vm_timeline row's list: an ingest holds at
// most ledger.MaxIngest entries.
const maxTimelineRow = ledger.MaxIngest

// formatIndexes writes ascending entry indexes as vm_timeline.idxs.
func formatIndexes(ix []int64) string {
	b := make([]byte, 0, 9*len(ix))
	for i, x := range ix {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, x, 10)
	}
	return string(b)
}

// parseIndexes reads vm_timeline.idxs strictly: canonical non-negative
// decimals, strictly ascending, at most maxTimelineRow, the first equal to
// first.
func parseIndexes(list string, first int64) ([]int64, error) {
	if len(list) > maxTimelineRow*20 {
		return nil, fmt.Errorf("index list of %d bytes", len(list))
	}
	var out []int64
	for part := range strings.SplitSeq(list, ",") {
		x, err := strconv.ParseInt(part, 10, 64)
		if err != nil || x < 0 || strconv.FormatInt(x, 10) != part {
			return nil, fmt.Errorf("index list: %q is not an entry index", part)
		}
		if len(out) > 0 && x <= out[len(out)-1] {
			return nil, fmt.Errorf("index list: %d after %d", x, out[len(out)-1])
		}
		if len(out) == maxTimelineRow {
			return nil, fmt.Errorf("index list: more than %d indexes", maxTimelineRow)
		}
		out = append(out, x)
	}
	if out[0] != first {
		return nil, fmt.Errorf("index list starts at %d, the row says %d", out[0], first)
	}
	return out, nil
}
