package scan

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the report for people: a table of findings, the suggested registry entries,
// then one line per source.
func WriteText(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(r.Findings) > 0 {
		fmt.Fprintln(tw, "KIND\tSOURCE\tLOCATION\tIDENTIFIER\tEVIDENCE")
		for _, f := range r.Findings {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Kind, f.Source, f.Location, f.Identifier, f.Evidence())
		}
	} else {
		fmt.Fprintln(tw, "no findings")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	seen := map[string]bool{}
	first := true
	for _, f := range r.Findings {
		if f.Suggestion == "" || seen[f.Suggestion] {
			continue
		}
		seen[f.Suggestion] = true
		if first {
			fmt.Fprintln(w, "\nsuggested registry entries:")
			first = false
		}
		fmt.Fprintf(w, "\n# %s %s (%s)\n%s\n", f.Source, f.Location, f.Identifier, f.Suggestion)
	}
	fmt.Fprintln(w, "\nsources:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range r.Sources {
		var notes []string
		if s.Partial {
			notes = append(notes, "partial: the budget ran out")
		}
		if s.Error != "" {
			notes = append(notes, "ERROR "+s.Error)
		}
		unit := map[SourceKind]string{SourceSQL: "table", SourceRedis: "key family", SourceFiles: "partition"}[s.Kind]
		rows := map[SourceKind]string{SourceSQL: "row", SourceRedis: "key", SourceFiles: "row"}[s.Kind]
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Kind, s.Name, plural(s.Units, unit), plural(int(s.Rows), rows),
			plural(int(s.Values), "value"), (time.Duration(s.ElapsedMS) * time.Millisecond).String(), strings.Join(notes, "; "))
	}
	return tw.Flush()
}

// Summary is the report in one line.
func (r *Report) Summary() string {
	var rows int64
	for _, s := range r.Sources {
		rows += s.Rows
	}
	line := fmt.Sprintf("%s scanned, %d rows and keys sampled: %d unregistered, %d residue",
		plural(len(r.Sources), "source"), rows, r.Count(Unregistered), r.Count(Residue))
	if r.ResidueChecked {
		line += fmt.Sprintf(" (against %s)", plural(r.Erased, "erased identifier"))
	} else {
		line += " (residue not checked: no store)"
	}
	if n := r.Failed(); n > 0 {
		line += fmt.Sprintf("; %s could not be read", plural(n, "source"))
	}
	return line
}
