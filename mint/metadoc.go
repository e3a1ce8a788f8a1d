package mint

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/medimint/medimint/index"
)

// metadataQuiet is how long a series must go without a new instance
// before its /metadata document is built: long enough that a study
// arriving instance by instance is not rebuilt for each, short enough
// that a viewer opening it right after finds the document ready.
const metadataQuiet = 200 * time.Millisecond

// maxMetadataPending bounds the series awaiting a build; past it a
// series' document is left to the first request for it, as before.
const maxMetadataPending = 4096

// metadocs builds each series' /metadata document (index
// RefreshSeriesMetadata) once its instances stop arriving, rather than on
// the first request for it, so the first viewer to open a fresh study does
// not wait for the build (0.5–0.8 ms of Postgres a series here, more for
// large ones). A series is built at most once every
// index.RebuildEvery while it keeps changing. Timers, not a goroutine of
// its own: nothing to stop when the pipeline goes away.
type metadocs struct {
	mu     sync.Mutex
	series map[string]*metadoc
}

type metadoc struct {
	timer   *time.Timer
	cooling bool // built less than RebuildEvery ago
	dirty   bool // changed while cooling
}

// touch notes that the series received an instance.
func (p *Pipeline) touchMetadata(seriesUID string) {
	m := &p.metadocs
	m.mu.Lock()
	defer m.mu.Unlock()
	if d, ok := m.series[seriesUID]; ok {
		if d.cooling {
			d.dirty = true
		} else {
			d.timer.Reset(metadataQuiet)
		}
		return
	}
	if m.series == nil {
		m.series = map[string]*metadoc{}
	}
	if len(m.series) >= maxMetadataPending {
		return
	}
	d := &metadoc{}
	d.timer = time.AfterFunc(metadataQuiet, func() { p.buildMetadata(seriesUID, d) })
	m.series[seriesUID] = d
}

// buildMetadata builds the series' document, then keeps the series
// cooling for RebuildEvery; a change meanwhile builds it again after.
func (p *Pipeline) buildMetadata(seriesUID string, d *metadoc) {
	m := &p.metadocs
	m.mu.Lock()
	if d.cooling && !d.dirty {
		delete(m.series, seriesUID) // quiet since the last build
		m.mu.Unlock()
		return
	}
	d.cooling, d.dirty = true, false
	m.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err := p.ix.RefreshSeriesMetadata(ctx, seriesUID)
	cancel()
	if err != nil {
		// The first request for the series builds it instead.
		p.log.Debug("mint: build series metadata", slog.String("series", seriesUID), slog.Any("err", err))
	}
	m.mu.Lock()
	d.timer.Reset(index.RebuildEvery)
	m.mu.Unlock()
}
