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
	chartW = 1000
	chartH = 720
)

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
// line at ref (skipped when NaN).
func panel(img *image.RGBA, area image.Rectangle, title string, rs []Result, value func(*Result) float64, ref float64, refLabel string) {
	const scale = 2
	drawText(img, area.Min.X, area.Min.Y, title, scale, colText)
	plot := image.Rect(area.Min.X+70, area.Min.Y+30, area.Max.X-10, area.Max.Y-50)

	top := 0.0
	for i := range rs {
		if rs[i].OK {
			top = math.Max(top, value(&rs[i]))
		}
	}
	if !math.IsNaN(ref) {
		top = math.Max(top, ref)
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

	n := len(rs)
	if n > 0 {
		slot := plot.Dx() / n
		barW := slot * 6 / 10
		for i := range rs {
			r := &rs[i]
			x0 := plot.Min.X + i*slot + (slot-barW)/2
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
			drawText(img, x0+(barW-textWidth(lbl, scale))/2, yy-glyphH*scale-4, lbl, scale, colText)
			name := r.Method
			ns := scale
			if textWidth(name, ns) > slot-4 {
				ns = 1
			}
			drawText(img, x0+(barW-textWidth(name, ns))/2, plot.Max.Y+10, name, ns, colText)
		}
	}
	if !math.IsNaN(ref) {
		yy := y(ref)
		for x := plot.Min.X; x < plot.Max.X; x += 12 {
			fillRect(img, image.Rect(x, yy-1, min(x+7, plot.Max.X), yy+2), colRef)
		}
		drawText(img, plot.Max.X-textWidth(refLabel, scale), yy-glyphH*scale-5, refLabel, scale, colRef)
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
func Chart(title string, rs []Result) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	fillRect(img, img.Bounds(), colBG)
	drawText(img, 20, 14, title, 2, colText)

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
	half := (chartH - 50) / 2
	panel(img, image.Rect(20, 50, chartW-20, 50+half-10), "SECONDS TO SYNCED (LOWER IS BETTER)",
		joins, seconds, refS, fmt.Sprintf("cp -r: %ss", trimFloat(roundTo(refS, 3))))
	panel(img, image.Rect(20, 50+half, chartW-20, chartH-10), "DATA MB/S (HIGHER IS BETTER)",
		joins, mbps, refM, fmt.Sprintf("cp -r: %s MB/s", trimFloat(roundTo(refM, 3))))
	return img
}

// WritePNG encodes the chart.
func WritePNG(w io.Writer, title string, rs []Result) error {
	if err := png.Encode(w, Chart(title, rs)); err != nil {
		return fmt.Errorf("encode chart: %w", err)
	}
	return nil
}
