package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strings"
)

const (
	chartMinW = 1000
	chartH    = 760
	barSlot   = 170 // px per bar, so that names fit at scale 2
)

// chartWidth grows with the number of bars.
func chartWidth(bars int) int { return max(chartMinW, 110+barSlot*bars) }

var (
	colBG     = color.RGBA{255, 255, 255, 255}
	colText   = color.RGBA{30, 30, 30, 255}
	colGrid   = color.RGBA{225, 225, 225, 255}
	colAxis   = color.RGBA{90, 90, 90, 255}
	colStock  = color.RGBA{140, 150, 165, 255}
	colNative = color.RGBA{230, 120, 30, 255}
	colRef    = color.RGBA{200, 30, 30, 255}
	colFailed = color.RGBA{200, 200, 200, 255}
)

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for axis ends.
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p*(1+1e-9) {
			return m * p
		}
	}
	return 10 * p
}

func fillRect(img *image.RGBA, r image.Rectangle, c color.Color) {
	draw.Draw(img, r.Intersect(img.Bounds()), &image.Uniform{c}, image.Point{}, draw.Src)
}

// panel draws one bar chart into area: a bar per run, and a dashed reference
// line at ref (skipped when NaN). note, when it returns non-empty, is a line
// under a bar's name.
func panel(img *image.RGBA, area image.Rectangle, title string, rs []Result, value func(*Result) float64, ref float64, refLabel string, note func(*Result) string) {
	const scale = 2
	drawText(img, area.Min.X, area.Min.Y, title, scale, colText)
	plot := image.Rect(area.Min.X+70, area.Min.Y+30, area.Max.X-10, area.Max.Y-86)

	top := 0.0
	for i := range rs {
		if rs[i].OK {
			top = math.Max(top, value(&rs[i]))
		}
	}
	if !math.IsNaN(ref) {
		top = math.Max(top, ref)
		// The reference line's key sits right of the title.
		kx := area.Max.X - 10 - textWidth(refLabel, scale)
		for x := kx - 40; x < kx-8; x += 12 {
			fillRect(img, image.Rect(x, area.Min.Y+5, x+7, area.Min.Y+8), colRef)
		}
		drawText(img, kx, area.Min.Y, refLabel, scale, colRef)
	}
	top = niceCeil(top * 1.08)

	y := func(v float64) int {
		return plot.Max.Y - int(math.Round(v/top*float64(plot.Dy())))
	}
	// Grid and its labels: five steps.
	for i := 0; i <= 5; i++ {
		v := top * float64(i) / 5
		yy := y(v)
		fillRect(img, image.Rect(plot.Min.X, yy, plot.Max.X, yy+1), colGrid)
		lbl := trimFloat(v)
		drawText(img, plot.Min.X-8-textWidth(lbl, scale), yy-glyphH*scale/2, lbl, scale, colAxis)
	}
	fillRect(img, image.Rect(plot.Min.X, plot.Min.Y, plot.Min.X+1, plot.Max.Y+1), colAxis)
	fillRect(img, image.Rect(plot.Min.X, plot.Max.Y, plot.Max.X, plot.Max.Y+1), colAxis)

	// The reference line goes under the bars and their labels.
	if !math.IsNaN(ref) {
		yy := y(ref)
		for x := plot.Min.X; x < plot.Max.X; x += 12 {
			fillRect(img, image.Rect(x, yy-1, min(x+7, plot.Max.X), yy+2), colRef)
		}
	}
	n := len(rs)
	if n == 0 {
		return
	}
	slot := plot.Dx() / n
	barW := slot * 6 / 10
	line := (glyphH + 3) * scale
	for i := range rs {
		r := &rs[i]
		cx := plot.Min.X + i*slot + slot/2
		x0 := cx - barW/2
		c := colStock
		if strings.HasPrefix(r.Method, "native-") {
			c = colNative
		}
		lbl := "failed"
		yy := plot.Max.Y - 2
		if r.OK {
			v := value(r)
			yy = y(v)
			lbl = trimFloat(roundTo(v, 3))
		} else {
			c = colFailed
		}
		fillRect(img, image.Rect(x0, yy, x0+barW, plot.Max.Y), c)
		vx, vy := cx-textWidth(lbl, scale)/2, yy-glyphH*scale-4
		fillRect(img, image.Rect(vx-2, vy-2, vx+textWidth(lbl, scale)+2, vy+glyphH*scale+2), colBG)
		drawText(img, vx, vy, lbl, scale, colText)
		// The name, broken before "+" when it is too wide for the slot.
		names := []string{r.Method}
		if base, v, ok := strings.Cut(r.Method, "+"); ok && textWidth(r.Method, scale) > slot-4 {
			names = []string{base, "+" + v}
		}
		ly := plot.Max.Y + 8
		for _, nm := range names {
			drawText(img, cx-textWidth(nm, scale)/2, ly, nm, scale, colText)
			ly += line
		}
		if t := note(r); t != "" && r.OK {
			lines := []string{t}
			if a, b, ok := strings.Cut(t, " "); ok && textWidth(t, scale) > slot-4 {
				lines = []string{a, b}
			}
			for _, l := range lines {
				drawText(img, cx-textWidth(l, scale)/2, ly+2, l, scale, colRef)
				ly += line
			}
		}
	}
}

// roundTo keeps sig significant digits, so labels stay short.
func roundTo(v float64, sig int) float64 {
	if v == 0 || math.IsNaN(v) {
		return v
	}
	p := math.Pow(10, float64(sig)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// Chart renders the bench chart: seconds to Synced above, MB/s below, each
// with the cp -r run as a dashed reference line. cp -r itself gets no bar.
// Under the native methods' bars: their ratio to the stock method or cp -r.
func Chart(title, subtitle string, rs []Result) *image.RGBA {
	bars := 0
	for _, r := range rs {
		if r.Method != cpMethod {
			bars++
		}
	}
	chartW := chartWidth(bars)
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	fillRect(img, img.Bounds(), colBG)
	drawText(img, 20, 12, title, 2, colText)
	drawText(img, 20, 34, subtitle, 1, colAxis)
	// Legend, top right.
	lx := chartW - 20 - textWidth("STOCK  NATIVE", 2) - 40
	fillRect(img, image.Rect(lx, 14, lx+14, 28), colStock)
	drawText(img, lx+20, 14, "STOCK", 2, colText)
	lx += 20 + textWidth("STOCK  ", 2)
	fillRect(img, image.Rect(lx, 14, lx+14, 28), colNative)
	drawText(img, lx+20, 14, "NATIVE", 2, colText)

	var joins []Result
	ref := &Result{OK: false}
	for _, r := range rs {
		if r.Method == cpMethod {
			if r.OK {
				ref = &r
			}
			continue
		}
		joins = append(joins, r)
	}
	refS, refM := math.NaN(), math.NaN()
	if ref.OK {
		refS, refM = ref.Seconds, ref.MBps
	}
	stock := func(r *Result) string {
		base, lz4, _ := strings.Cut(r.Method, "+")
		other := map[string]string{"native-copy": "rsync", "native-backup": "mariabackup"}[base]
		if other == "" {
			return ""
		}
		// Compare like with like: rsync has no lz4 variant.
		if lz4 != "" && other != "rsync" {
			other += "+" + lz4
		}
		return other
	}
	timeNote := func(r *Result) string {
		o := stock(r)
		if o == "" {
			return ""
		}
		v := ratio(r, find(rs, o), seconds)
		if math.IsNaN(v) {
			return ""
		}
		return fmt.Sprintf("%sx %s", trimFloat(v), o)
	}
	cpNote := func(r *Result) string {
		if !strings.HasPrefix(r.Method, "native-") {
			return ""
		}
		v := ratio(r, ref, mbps)
		if math.IsNaN(v) {
			return ""
		}
		return fmt.Sprintf("%.0f%% of cp -r", v*100)
	}
	top := 56
	half := (chartH - top) / 2
	panel(img, image.Rect(20, top, chartW-20, top+half-6), "SECONDS TO SYNCED (LOWER IS BETTER)",
		joins, seconds, refS, fmt.Sprintf("cp -r: %s s", trimFloat(roundTo(refS, 3))), timeNote)
	panel(img, image.Rect(20, top+half+6, chartW-20, chartH-6), "DATA MB/S (HIGHER IS BETTER)",
		joins, mbps, refM, fmt.Sprintf("cp -r: %s MB/s", trimFloat(roundTo(refM, 3))), cpNote)
	return img
}

// WritePNG encodes the chart.
func WritePNG(w io.Writer, title, subtitle string, rs []Result) error {
	if err := png.Encode(w, Chart(title, subtitle, rs)); err != nil {
		return fmt.Errorf("encode chart: %w", err)
	}
	return nil
}
