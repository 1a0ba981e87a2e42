package main

// Help for every command and command group: `erasure help [COMMAND...]`, `erasure COMMAND
// --help`, and a group without its command (`erasure records`). A command's flags are read
// from the FlagSet it builds: the command is run in a probe mode where parse stops it before
// it does anything (see probe).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// exitCodes is the exit code table, for help texts.
const exitCodes = `exit codes:
  0  done (wait: the request completed)
  1  the work failed (a request failed or was cancelled, an audit trail is broken, a scan found residue)
  2  bad usage or input
  3  not found
  4  not authenticated or not allowed (ERASURE_TOKEN)
  5  conflict with the current state (already ended, ambiguous id prefix...)
  6  unavailable: the server or a dependency cannot be reached; try again`

// probe is the stderr a command is given to read its flags: flags() hands it the FlagSet it
// made, and parse() returns errProbe at once, before the command does anything.
type probe struct {
	io.Writer
	fs *flag.FlagSet
}

var errProbe = errors.New("probe")

// flagsOf returns the FlagSet command c builds (nil when it takes no flags).
func flagsOf(c cmd) *flag.FlagSet {
	p := &probe{Writer: io.Discard}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // should a command ever get past parse, it finds its context done
	c.run(ctx, nil, io.Discard, p)
	return p.fs
}

// groups returns the command groups (the first word of two-word commands) with their
// commands' second words, sorted.
func groups() map[string][]string {
	out := map[string][]string{}
	for name := range commands {
		if g, sub, ok := strings.Cut(name, " "); ok {
			out[g] = append(out[g], sub)
		}
	}
	for _, subs := range out {
		sort.Strings(subs)
	}
	return out
}

// synopsis splits a summary "what it does: name ARGS..." into what it does and the synopsis;
// a summary without one gets "name [flags]".
func synopsis(c cmd) (what, usage string) {
	what = c.summary
	if i := strings.Index(c.summary, ": "+c.name); i >= 0 {
		what, usage = c.summary[:i], c.summary[i+2:]
		if j := strings.Index(usage, "; "); j >= 0 {
			what += " (" + usage[j+2:] + ")"
			usage = usage[:j]
		}
		return what, usage
	}
	if f := flagsOf(c); f != nil && hasFlags(f) {
		return what, c.name + " [flags]"
	}
	return what, c.name
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// flagName writes a flag as people type it: --name, or -n for one letter.
func flagName(name string) string {
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// printFlags writes the flags of fs, one per line.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	type line struct{ left, usage string }
	var lines []line
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		left := flagName(f.Name)
		if arg != "" {
			left += " " + strings.ToUpper(arg)
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			usage += " (default " + d + ")"
		}
		lines = append(lines, line{left, usage})
		width = max(width, len(left))
	})
	for _, l := range lines {
		fmt.Fprintf(w, "  %-*s  %s\n", width, l.left, l.usage)
	}
}

// commandHelp writes the help of command c.
func commandHelp(w io.Writer, c cmd) {
	what, usage := synopsis(c)
	fmt.Fprintf(w, "usage: erasure %s\n\n%s.\n", usage, upperFirst(what))
	if fs := flagsOf(c); fs != nil && hasFlags(fs) {
		fmt.Fprintln(w, "\nflags:")
		printFlags(w, fs)
	}
	if clientCommand(c.name) {
		fmt.Fprintln(w, "\nIt talks to the API at ERASURE_URL (default http://127.0.0.1:8080) with ERASURE_TOKEN.")
	}
	fmt.Fprintln(w, "\n"+exitCodes)
}

// groupHelp writes the help of a command group.
func groupHelp(w io.Writer, group string) {
	fmt.Fprintf(w, "usage: erasure %s COMMAND [flags]\n\ncommands:\n", group)
	subs := groups()[group]
	width := 0
	for _, s := range subs {
		width = max(width, len(s))
	}
	for _, s := range subs {
		what, _ := synopsis(commands[group+" "+s])
		fmt.Fprintf(w, "  %-*s  %s\n", width, s, what)
	}
	fmt.Fprintf(w, "\nrun `erasure help %s COMMAND` or `erasure %s COMMAND --help` for a command's flags.\n", group, group)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// clientCommand reports whether the command talks to the API (the others read the
// configuration file or work locally).
func clientCommand(name string) bool {
	switch name {
	case "serve", "demo", "scan", "datasets validate", "datasets check", "nats credentials", "version", "completion", "help":
		return false
	}
	return true
}

// usage writes the list of every command.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: erasure COMMAND [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	width := 0
	for n := range commands {
		names = append(names, n)
		width = max(width, len(n))
	}
	sort.Strings(names)
	for _, n := range names {
		what, _ := synopsis(commands[n])
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, what)
	}
	fmt.Fprintln(w, "\nrun `erasure help COMMAND` or `erasure COMMAND --help` for a command's arguments and flags.")
	fmt.Fprintln(w, "serve, demo, scan, datasets validate|check and nats credentials read the configuration file;")
	fmt.Fprintln(w, "the other commands talk to the API at ERASURE_URL (default http://127.0.0.1:8080) with ERASURE_TOKEN.")
	fmt.Fprintln(w, "\n"+exitCodes)
}

// wantsHelp reports whether args ask for help (-h, -help or --help before any "--").
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

func init() {
	command("help", "show the help of a command or of every command: help [COMMAND...]", runHelp)
}

func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("help", stderr)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) == 0:
		usage(stdout)
		return nil
	case len(pos) <= 2:
		if c, ok := commands[strings.Join(pos, " ")]; ok {
			commandHelp(stdout, c)
			return nil
		}
		if _, ok := groups()[pos[0]]; ok && len(pos) == 1 {
			groupHelp(stdout, pos[0])
			return nil
		}
	}
	return unknownCommand(pos)
}

// unknownCommand is the error for words that name no command, with the closest names.
func unknownCommand(words []string) error {
	typed := strings.Join(words[:min(2, len(words))], " ")
	if subs, ok := groups()[words[0]]; ok {
		return usageError(fmt.Sprintf("unknown command %q: erasure %s takes %s", typed, words[0], strings.Join(subs, ", ")))
	}
	msg := fmt.Sprintf("unknown command %q (run `erasure help`)", typed)
	var close []string
	for name := range commands {
		if first, _, _ := strings.Cut(name, " "); editDistance(first, words[0]) <= 2 && !listed(close, first) {
			close = append(close, first)
		}
	}
	if len(close) > 0 {
		sort.Strings(close)
		msg = fmt.Sprintf("unknown command %q: did you mean %s? (run `erasure help`)", typed, strings.Join(close, " or "))
	}
	return usageError(msg)
}

func listed(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
