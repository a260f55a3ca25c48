package main

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one system's values: y[i] at x[i] (lines) or in category i (bars).
type series struct {
	name string
	x, y []float64
}

// plotLines draws series as lines with points; logX/logY use log scales.
func plotLines(file, title, xlabel, ylabel string, ss []series, logX, logY bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = -vg.Points(8)
	p.Add(plotter.NewGrid())
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, s := range ss {
		pts := plotter.XYs{}
		for j := range s.x {
			if (logY && s.y[j] <= 0) || math.IsNaN(s.y[j]) {
				continue
			}
			pts = append(pts, plotter.XY{X: s.x[j], Y: s.y[j]})
		}
		if len(pts) == 0 {
			continue
		}
		l, sc, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		sc.Color = plotutil.Color(i)
		sc.Shape = plotutil.Shape(i)
		p.Add(l, sc)
		p.Legend.Add(s.name, l, sc)
	}
	// Head room above the data for the legend.
	if !logY {
		p.Y.Min = 0
		p.Y.Max *= 1.35
	} else {
		p.Y.Max *= 4
	}
	p.X.Padding = vg.Points(12)
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// plotBars draws grouped bars: one group per category, one bar per series
// (s.y[i] in category i; NaN: no bar).
func plotBars(file, title, ylabel string, cats []string, ss []series) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	w := vg.Points(math.Min(60, 300/float64(len(cats)*len(ss))))
	for i, s := range ss {
		v := make(plotter.Values, len(cats))
		for j := range cats {
			if j < len(s.y) && !math.IsNaN(s.y[j]) {
				v[j] = s.y[j]
			}
		}
		b, err := plotter.NewBarChart(v, w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		b.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.NominalX(cats...)
	p.Y.Min = 0
	// Head room for the legend.
	p.Y.Max *= 1.35
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}

// fmtRate formats a rate in tasks/s.
func fmtRate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fk", v/1000)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// plotDots draws each series as points over nominal categories (s.y[i] in
// category i), on a log y scale when logY: for
// latencies spanning orders of magnitude, where bars cannot start at 0.
func plotDots(file, title, ylabel string, cats []string, ss []series, logY bool) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = -vg.Points(8)
	p.Add(plotter.NewGrid())
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	for i, s := range ss {
		pts := plotter.XYs{}
		for j := range cats {
			if j < len(s.y) && !math.IsNaN(s.y[j]) && (!logY || s.y[j] > 0) {
				pts = append(pts, plotter.XY{X: float64(j), Y: s.y[j]})
			}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.Color, sc.Shape, sc.Radius = plotutil.Color(i), plotutil.Shape(i), vg.Points(5)
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	p.NominalX(cats...)
	p.X.Min, p.X.Max = -0.5, float64(len(cats))-0.5
	if logY {
		p.Y.Max *= 4
	} else {
		p.Y.Min = 0
		p.Y.Max *= 1.35
	}
	return p.Save(7*vg.Inch, 4.5*vg.Inch, file)
}
