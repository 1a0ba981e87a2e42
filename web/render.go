package web

import (
	"fmt"
	"html/template"
	"io/fs"
	"path"
	"strings"
	"time"

	"erasure"
)

// parseTemplates parses every page of templates/ with the layout.
func (h *Handler) parseTemplates() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	h.pages = map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return fmt.Errorf("web: template %s: %w", n, err)
		}
		h.pages[base] = t
	}
	return nil
}

var funcs = template.FuncMap{
	"when":        when,
	"ago":         ago,
	"date":        func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"short":       short,
	"hashType":    func(h string) string { t, _, _ := strings.Cut(h, ":"); return t },
	"hashHex":     func(h string) string { _, x, _ := strings.Cut(h, ":"); return x },
	"statusClass": func(s any) string { return "st-" + fmt.Sprint(s) },
	"add":         func(a, b int) int { return a + b },
	"add64":       func(a, b int64) int64 { return a + b },
	"mul100":      func(f float64) float64 { return 100 * f },
	"pct": func(part, whole int64) string {
		if whole <= 0 {
			return "0%"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
	},
	"num":   num,
	"ended": func(s erasure.RequestStatus) bool { return s.Ended() },
}

// when formats a time (time.Time or *time.Time) in UTC; "—" for none.
func when(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return "—"
		}
		t = *x
	}
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// ago says how long before now a time is (or after, for deadlines).
func ago(now time.Time, v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x == nil {
			return ""
		}
		t = *x
	}
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, " from now"
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds%s", int(d.Seconds()), suffix)
	case d < time.Hour:
		return fmt.Sprintf("%dm%s", int(d.Minutes()), suffix)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%s", int(d.Hours()), suffix)
	}
	return fmt.Sprintf("%dd%s", int(d.Hours()/24), suffix)
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// num writes an integer with thin spaces between thousands.
func num(v any) string {
	s := fmt.Sprint(v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteRune(' ')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// masker hides a subject's clear values in free text (task errors and notes, written by
// connectors and by datasets' owners): defense in depth, connectors are asked never to put
// them there.
type masker []erasure.Identifier

func (m masker) mask(s string) string {
	for _, id := range m {
		if len(id.Value) >= 3 && strings.Contains(s, id.Value) {
			s = strings.ReplaceAll(s, id.Value, "["+id.Type+"]")
		}
	}
	return s
}
