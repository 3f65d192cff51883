package cli

import (
	"io"
	"os"
	"sync"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress draws one bar per download on a terminal; elsewhere it does
// nothing and the logs say what happened.
type progress struct {
	out  io.Writer
	mu   sync.Mutex
	bars map[string]*progressbar.ProgressBar
}

func newProgress(g *Globals) *progress {
	f, ok := g.Stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &progress{out: f, bars: map[string]*progressbar.ProgressBar{}}
}

func (p *progress) Start(id, title string, offset, total int64) io.Writer {
	if p == nil {
		return io.Discard
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(p.out), progressbar.OptionSetDescription(Clean(title, false)),
		progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100_000_000), progressbar.OptionClearOnFinish())
	_ = bar.Set64(offset)
	p.mu.Lock()
	p.bars[id] = bar
	p.mu.Unlock()
	return bar
}

func (p *progress) Done(id string, err error) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if bar := p.bars[id]; bar != nil {
		_ = bar.Finish()
		delete(p.bars, id)
	}
}

// Wait ends every bar still drawn.
func (p *progress) Wait() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, bar := range p.bars {
		_ = bar.Finish()
		delete(p.bars, id)
	}
}
