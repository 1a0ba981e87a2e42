package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"erasure"
)

func init() {
	command("requests list", "list requests, newest first: requests list [--status S] [--overdue] [--dataset D] [--identifier TYPE=VALUE|TYPE=-] [--limit N] [--cursor C] [--all] [--json]", runRequestsList)
}

// stdin is where `--identifier TYPE=-` reads the value; tests may replace it.
var stdin io.Reader = os.Stdin

func runRequestsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("requests list", stderr)
	status := fs.String("status", "", "only requests with this status: pending, running, completed, failed or cancelled")
	overdue := fs.Bool("overdue", false, "only open requests past their deadline")
	dataset := fs.String("dataset", "", "only requests with an unfinished task on this dataset (what it holds up)")
	ident := fs.String("identifier", "", "only the requests of the subject with this identifier, ended ones included: TYPE=VALUE, or TYPE=- to read the value from standard input (kept out of the shell's history)")
	limit := fs.Int("limit", 50, "requests per page (1 to 500)")
	cursor := fs.String("cursor", "", "the page after this cursor (printed at the end of the previous page)")
	all := fs.Bool("all", false, "follow the cursor to the last page")
	asJSON := fs.Bool("json", false, "print the requests as JSON lines")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("requests list takes no argument: filter with --status, --overdue, --dataset or --identifier")
	}
	if *limit < 1 || *limit > 500 {
		return usageError("--limit must be from 1 to 500")
	}
	f := erasure.RequestFilter{Status: erasure.RequestStatus(*status), Overdue: *overdue, Dataset: *dataset, Cursor: *cursor, Limit: *limit}
	if f.Status != "" && !f.Status.Valid() {
		return usageError("--status must be pending, running, completed, failed or cancelled")
	}
	if *ident != "" {
		typ, value, ok := strings.Cut(*ident, "=")
		if !ok || typ == "" {
			return usageError("--identifier must be TYPE=VALUE, such as email=someone@example.org, or TYPE=- to read the value from standard input")
		}
		if value == "-" {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && err != io.EOF {
				return err
			}
			value = strings.TrimRight(line, "\r\n")
		}
		id := erasure.Identifier{Type: typ, Value: value}
		if err := id.Validate(); err != nil {
			return err
		}
		f.Identifier = &id
	}
	c, err := newClient()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "ID\tSTATUS\tOVERDUE\tREASON\tSUBMITTED\tBY\tDEADLINE\tENDED")
	}
	enc := json.NewEncoder(stdout)
	n := 0
	for {
		page, err := c.Requests(ctx, f)
		if err != nil {
			return err
		}
		for _, r := range page.Requests {
			n++
			if *asJSON {
				if err := enc.Encode(r); err != nil {
					return err
				}
				continue
			}
			overdue, ended := "", "-"
			if r.Overdue {
				overdue = "OVERDUE"
			}
			if r.FinishedAt != nil {
				ended = r.FinishedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, overdue, r.Reason, r.CreatedAt.Format(time.RFC3339), r.SubmittedBy, r.Deadline.Format(time.RFC3339), ended)
		}
		f.Cursor = page.Next
		if !*all || page.Next == "" {
			break
		}
	}
	tw.Flush()
	switch {
	case f.Cursor != "":
		fmt.Fprintf(stderr, "%s listed; more with --cursor %s (or --all)\n", plural(n, "request"), f.Cursor)
	default:
		fmt.Fprintf(stderr, "%s listed\n", plural(n, "request"))
	}
	return nil
}
