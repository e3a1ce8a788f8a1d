// Command report turns the system benchmark's measurements
// (scripts/bench-system.sh) into bench/results/YYYY-MM-DD.md — medians
// over the rounds, ratios to Orthanc and to dcmtk's storescp (as it is,
// and made durable like Medimint's C-STORE by bench/durable), the machine,
// the Go benchmarks' key lines — and a PNG bar chart of the ratios drawn
// with image/png alone.
//
//	report -results run.jsonl [-gobench go.txt] [-peers "..."] -md OUT.md -png OUT.png
//
// Each line of run.jsonl is {"system", "round", "metric", "value", "unit"};
// system is medimint, orthanc, storescp or storescp_fsync.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// metric describes one row of the table.
type metric struct {
	key, label, unit string
	higherBetter     bool
}

// metrics is the table's rows, in order.
var metrics = []metric{
	{"cstore_1_inst_per_s", "C-STORE, 1 association", "inst/s", true},
	{"cstore_4_inst_per_s", "C-STORE, 4 associations", "inst/s", true},
	{"stow_inst_per_s", "STOW-RS, 20 instances a request", "inst/s", true},
	{"stow_mb_per_s", "STOW-RS throughput", "MB/s", true},
	{"wado_study_mb_per_s", "WADO-RS whole study", "MB/s", true},
	{"qido_patientid_p50", "QIDO-RS ?PatientID= p50", "ms", false},
	{"qido_patientid_p95", "QIDO-RS ?PatientID= p95", "ms", false},
	{"qido_studydate_range_p50", "QIDO-RS ?StudyDate=range p50", "ms", false},
	{"qido_studydate_range_p95", "QIDO-RS ?StudyDate=range p95", "ms", false},
	{"metadata_p50", "WADO-RS /metadata p50", "ms", false},
	{"metadata_p95", "WADO-RS /metadata p95", "ms", false},
	{"peak_rss_mib", "Peak RSS (VmHWM)", "MiB", false},
	{"mint_studies_per_min", "Studies minted (after the 60 s quiet period)", "studies/min", true},
}

type sample struct {
	System string  `json:"system"`
	Round  int     `json:"round"`
	Metric string  `json:"metric"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
}

func main() {
	results := flag.String("results", "", "measurements, JSON lines")
	gobench := flag.String("gobench", "", "go test -bench output (optional)")
	peers := flag.String("peers", "", "versions of the peers, for the report")
	md := flag.String("md", "", "Markdown output")
	pngOut := flag.String("png", "", "PNG chart output")
	flag.Parse()
	if *results == "" || *md == "" || *pngOut == "" {
		flag.Usage()
		os.Exit(2)
	}
	samples, err := readSamples(*results)
	if err != nil {
		fail(err)
	}
	t := summarise(samples)
	rounds := map[int]bool{}
	for _, s := range samples {
		rounds[s.Round] = true
	}
	var gb []string
	if *gobench != "" {
		if gb, err = goBenchLines(*gobench); err != nil {
			fail(err)
		}
	}
	f, err := os.Create(*md)
	if err != nil {
		fail(err)
	}
	writeMarkdown(f, t, len(rounds), gb, *peers, filepath.Base(*pngOut))
	if err := f.Close(); err != nil {
		fail(err)
	}
	if err := writeChart(*pngOut, t); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "report:", err)
	os.Exit(1)
}

func readSamples(path string) ([]sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var s sample
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, n, err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// table holds, per metric and system, the values of every round.
type table map[string]map[string][]float64

func summarise(samples []sample) table {
	t := table{}
	for _, s := range samples {
		if t[s.Metric] == nil {
			t[s.Metric] = map[string][]float64{}
		}
		t[s.Metric][s.System] = append(t[s.Metric][s.System], s.Value)
	}
	return t
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratio is Medimint's median over the peer's, or NaN.
func (t table) ratio(key, peer string) float64 {
	a, b := median(t[key]["medimint"]), median(t[key][peer])
	if math.IsNaN(a) || math.IsNaN(b) || b == 0 {
		return math.NaN()
	}
	return a / b
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func cell(vals []float64) string {
	if len(vals) == 0 {
		return "–"
	}
	s := num(median(vals))
	if len(vals) > 1 {
		s += fmt.Sprintf(" <sub>(%s–%s)</sub>", num(slices.Min(vals)), num(slices.Max(vals)))
	}
	return s
}

func ratioCell(r float64) string {
	if math.IsNaN(r) {
		return "–"
	}
	if r < 0.1 {
		return fmt.Sprintf("%.3f×", r)
	}
	return fmt.Sprintf("%.2f×", r)
}

func writeMarkdown(w io.Writer, t table, rounds int, gobench []string, peers, chart string) {
	fmt.Fprintf(w, "# System benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(w, "Machine: %s.  \n", machine())
	if load := t["loadavg_1m"]["machine"]; len(load) > 0 {
		var ls []string
		for _, l := range load {
			ls = append(ls, num(l))
		}
		fmt.Fprintf(w, "Load average (1 min) as each system started, shared machine: %s.  \n", strings.Join(ls, ", "))
	}
	if peers != "" {
		fmt.Fprintf(w, "Peers: %s.  \n", peers)
	}
	fmt.Fprintf(w, "Same corpus (/work/shared/corpus/bench-corpus.sh: 200 instances, 10 studies, ~139 MiB) into each server, "+
		"systems alternating, %d rounds; medians with (min–max). Ratios are Medimint ÷ peer: above 1 is better for "+
		"rates, below 1 is better for latencies and memory (↓). dcmtk clients run with TCP_NODELAY=1. "+
		"Produced by scripts/bench-system.sh and bench/report.\n\n", rounds)
	fmt.Fprintln(w, "| Measurement | Unit | Medimint | Orthanc | Medimint ÷ Orthanc | storescp | Medimint ÷ storescp | storescp + fsync | Medimint ÷ storescp + fsync |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, m := range metrics {
		row := t[m.key]
		if row == nil {
			continue
		}
		label := m.label
		if !m.higherBetter {
			label += " ↓"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label, m.unit,
			cell(row["medimint"]), cell(row["orthanc"]), ratioCell(t.ratio(m.key, "orthanc")),
			cell(row["storescp"]), ratioCell(t.ratio(m.key, "storescp")),
			cell(row["storescp_fsync"]), ratioCell(t.ratio(m.key, "storescp_fsync")))
	}
	if t["cstore_1_inst_per_s"]["storescp_fsync"] != nil {
		fmt.Fprintln(w, "\nstorescp + fsync is dcmtk's storescp under bench/durable (LD_PRELOAD): each file it writes is fsynced, "+
			"then its directory, before it answers, the durability Medimint's C-STORE Success promises; plain storescp leaves "+
			"its files in the page cache.")
	}
	fmt.Fprintf(w, "\n![Medimint relative to its peers](%s)\n", chart)
	if len(gobench) > 0 {
		fmt.Fprintln(w, "\n## Go benchmarks (key lines)\n\n```")
		for _, l := range gobench {
			fmt.Fprintln(w, l)
		}
		fmt.Fprintln(w, "```")
	}
}

// machine describes the host: CPUs, model, memory.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				fmt.Sscanf(strings.TrimPrefix(l, "MemTotal:"), "%d", &kb)
			}
		}
		mem = fmt.Sprintf(", %.1f GiB memory", float64(kb)/(1<<20))
	}
	return fmt.Sprintf("%d CPUs (nproc), %s%s, %s/%s", runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH)
}

// goBenchLines keeps the benchmark result lines (and package headers) of
// go test -bench output.
func goBenchLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "pkg: ") || strings.HasPrefix(l, "--- FAIL") {
			out = append(out, l)
		}
	}
	return out, nil
}

// advantage is how many times better Medimint does than peer on m (above
// 1: Medimint better), whichever direction is better for m.
func (t table) advantage(m metric, peer string) float64 {
	r := t.ratio(m.key, peer)
	if !m.higherBetter && r > 0 {
		r = 1 / r
	}
	return r
}

// writeChart draws one horizontal bar per metric and peer: Medimint's
// advantage factor on a log2 axis from 1/8 to 8, 1 in the middle.
func writeChart(path string, t table) error {
	type bar struct {
		label string
		v     float64
		peer  string
	}
	var bars []bar
	for _, m := range metrics {
		for _, peer := range []string{"orthanc", "storescp", "storescp_fsync"} {
			if v := t.advantage(m, peer); !math.IsNaN(v) && v > 0 {
				bars = append(bars, bar{m.label, v, peer})
			}
		}
	}
	const (
		scale  = 2
		rowH   = 26
		labelW = 470
		plotW  = 520
		top    = 60
		margin = 20
	)
	w := margin + labelW + plotW + 150
	h := top + rowH*max(len(bars), 1) + 60
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	white := color.RGBA{255, 255, 255, 255}
	black := color.RGBA{30, 30, 30, 255}
	grey := color.RGBA{200, 200, 200, 255}
	colors := map[string]color.RGBA{"orthanc": {52, 110, 180, 255}, "storescp": {220, 130, 40, 255}, "storescp_fsync": {90, 160, 90, 255}}
	fill(img, img.Bounds(), white)
	drawText(img, margin, 12, scale, "MEDIMINT RELATIVE TO PEER (>1 = MEDIMINT BETTER, LOG SCALE)", black)
	x0 := margin + labelW
	xOf := func(v float64) int {
		l := math.Log2(v)
		l = math.Max(-3, math.Min(3, l))
		return x0 + int((l+3)/6*plotW)
	}
	for _, g := range []float64{0.125, 0.25, 0.5, 1, 2, 4, 8} {
		x := xOf(g)
		fill(img, image.Rect(x, top-6, x+1, h-40), grey)
		lbl := num(g)
		drawText(img, x-textWidth(lbl, 1)/2, h-34, 1, lbl, black)
	}
	one := xOf(1)
	fill(img, image.Rect(one-1, top-6, one+1, h-40), black)
	for i, b := range bars {
		y := top + i*rowH
		drawText(img, margin, y+5, scale, b.label, black)
		x := xOf(b.v)
		r := image.Rect(min(one, x), y+3, max(one, x)+1, y+rowH-5)
		fill(img, r, colors[b.peer])
		drawText(img, max(one, x)+6, y+8, 1, fmt.Sprintf("%.2fX VS %s", b.v, strings.ReplaceAll(b.peer, "_", " + ")), black)
	}
	drawText(img, margin, h-18, 1, "BLUE: VS ORTHANC   ORANGE: VS DCMTK STORESCP   GREEN: VS STORESCP + FSYNC", black)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fill(img *image.RGBA, r image.Rectangle, c color.Color) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.Set(x, y, c)
		}
	}
}
