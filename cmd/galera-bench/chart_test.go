package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func TestChartPNG(t *testing.T) {
	var buf bytes.Buffer
	if err := WritePNG(&buf, "SST INTO AN EMPTY NODE: 4.0 GIB TABLE", "galera-bench, 2026-11-21", sample()); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("chart is not a valid PNG: %v", err)
	}
	// sample() has five joins (cp -r gets no bar): the minimum width.
	if b := img.Bounds(); b.Dx() != 1000 || b.Dy() != chartH {
		t.Fatalf("chart is %dx%d, want 1000x%d", b.Dx(), b.Dy(), chartH)
	}
	seven := append(sample(), Result{Method: "native-copy+lz4", OK: true, Seconds: 5, MBps: 900}, Result{Method: "mariabackup+lz4", OK: true, Seconds: 30, MBps: 170})
	if b := Chart("T", "t", seven).Bounds(); b.Dx() != 110+7*barSlot {
		t.Errorf("chart with seven bars is %d wide, want %d", b.Dx(), 110+7*barSlot)
	}
	count := map[color.RGBA]int{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, a := img.At(x, y).RGBA()
			count[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), uint8(a >> 8)}]++
		}
	}
	// Two panels of bars for stock and native runs, a failed run's stub, and
	// the cp -r reference line.
	for name, c := range map[string]color.RGBA{"stock bars": colStock, "native bars": colNative, "cp -r line": colRef, "failed run": colFailed, "text": colText} {
		if count[c] == 0 {
			t.Errorf("chart has no %s (color %v)", name, c)
		}
	}
}

func TestChartBarHeights(t *testing.T) {
	rs := []Result{
		{Method: "rsync", OK: true, Seconds: 20, MBps: 100},
		{Method: "native-copy", OK: true, Seconds: 10, MBps: 200},
	}
	img := Chart("T", "t", rs)
	height := func(c color.RGBA, y0, y1 int) int {
		n := 0
		for y := y0; y < y1; y++ {
			for x := 0; x < chartMinW; x++ {
				if img.RGBAAt(x, y) == c {
					n++
					break
				}
			}
		}
		return n
	}
	half := chartH / 2
	// Top panel: seconds, rsync twice as tall; bottom: MB/s, native twice as tall.
	st, nt := height(colStock, 50, half), height(colNative, 50, half)
	sb, nb := height(colStock, half, chartH), height(colNative, half, chartH)
	if st < 2*nt-2 || st > 2*nt+2 {
		t.Errorf("seconds panel: rsync bar %d px, native-copy %d px; want 2:1", st, nt)
	}
	if nb < 2*sb-2 || nb > 2*sb+2 {
		t.Errorf("MB/s panel: native-copy bar %d px, rsync %d px; want 2:1", nb, sb)
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.7: 1, 1: 1, 1.1: 2, 3: 5, 7: 10, 23: 50, 180: 200, 760: 1000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestFontCoversLabels(t *testing.T) {
	for _, s := range []string{"0123456789", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", " .,:;-+/()%=<>_[]", "native-backup+lz4", "cp -r: 766 MB/s"} {
		for _, r := range s {
			if _, ok := glyphs[r]; ok {
				continue
			}
			if g := glyphFor(r); g == glyphs['?'] {
				t.Errorf("no glyph for %q", r)
			}
		}
	}
	for r, g := range glyphs {
		for i, row := range g {
			if len(row) != glyphW {
				t.Errorf("glyph %q row %d is %d wide, want %d", r, i, len(row), glyphW)
			}
		}
	}
	img := image.NewRGBA(image.Rect(0, 0, 20, 20))
	drawText(img, 0, 0, "1", 1, colText)
	if img.RGBAAt(2, 0) != colText || img.RGBAAt(0, 0) == colText {
		t.Errorf("glyph '1' drawn wrong at its top row")
	}
}
