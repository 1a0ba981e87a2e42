package web

import (
	"fmt"

	"erasure"
)

// chart is a bar chart of activity drawn as inline SVG by the template: one stacked bar per day
// (completed, cancelled, failed), scaled to the busiest day.
type chart struct {
	Width, Height int
	Bars          []bar
	Max           int
	Labels        []label
	Total         erasure.ActivityDay
}

type bar struct {
	X, W                 int
	Completed, Cancelled rect
	Failed               rect
	Title                string
}

type rect struct{ Y, H int }

type label struct {
	X    int
	Text string
}

const (
	chartWidth  = 720
	chartHeight = 160
	chartBottom = 140 // y of the baseline; the labels go below
)

func newChart(days []erasure.ActivityDay) chart {
	c := chart{Width: chartWidth, Height: chartHeight}
	for _, d := range days {
		c.Max = max(c.Max, d.Completed+d.Cancelled+d.Failed)
		c.Total.Completed += d.Completed
		c.Total.Cancelled += d.Cancelled
		c.Total.Failed += d.Failed
	}
	if len(days) == 0 {
		return c
	}
	step := chartWidth / len(days)
	scale := func(n int) int {
		if c.Max == 0 || n == 0 {
			return 0
		}
		return max(1, n*(chartBottom-10)/c.Max)
	}
	for i, d := range days {
		b := bar{X: i*step + 1, W: max(1, step-2), Title: fmt.Sprintf("%s: %d completed, %d cancelled, %d failed", d.Day.Format("2006-01-02"), d.Completed, d.Cancelled, d.Failed)}
		y := chartBottom
		b.Completed = rect{H: scale(d.Completed)}
		y -= b.Completed.H
		b.Completed.Y = y
		b.Cancelled = rect{H: scale(d.Cancelled)}
		y -= b.Cancelled.H
		b.Cancelled.Y = y
		b.Failed = rect{H: scale(d.Failed)}
		y -= b.Failed.H
		b.Failed.Y = y
		c.Bars = append(c.Bars, b)
		if i%7 == 0 || (i == len(days)-1 && i%7 >= 4) {
			c.Labels = append(c.Labels, label{X: i * step, Text: d.Day.Format("Jan 2")})
		}
	}
	return c
}
