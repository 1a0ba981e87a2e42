package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"erasure"
)

// cmd is one command, named by one or two words ("submit", "datasets validate").
type cmd struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]cmd{}

// command registers a command; called from init functions.
func command(name, summary string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	if _, dup := commands[name]; dup {
		panic("command registered twice: " + name)
	}
	commands[name] = cmd{name, summary, run}
}

// dispatch runs the command named by args and returns the process exit code. Help is
// answered here, on stdout, without running the command: `erasure help [COMMAND]`, `erasure
// COMMAND --help`, `erasure GROUP --help`; a group named without its command (`erasure
// records`) gets its help on stderr and exit code 2.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		usage(stdout)
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	c, rest, ok := find(args)
	if !ok {
		if _, group := groups()[args[0]]; group {
			switch {
			case len(args) == 1:
				groupHelp(stderr, args[0])
				return 2
			case strings.HasPrefix(args[1], "-") && wantsHelp(args[1:]):
				groupHelp(stdout, args[0])
				return 0
			}
		}
		fmt.Fprintf(stderr, "erasure: %s\n", unknownCommand(args))
		return 2
	}
	if wantsHelp(rest) {
		commandHelp(stdout, c)
		return 0
	}
	err := c.run(ctx, rest, stdout, stderr)
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "erasure %s: %s\n", c.name, oneLine(err))
	return exitCode(err)
}

func find(args []string) (cmd, []string, bool) {
	if len(args) >= 2 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:], true
		}
	}
	c, ok := commands[args[0]]
	return c, args[1:], ok
}

// exitCode maps an error code to a process exit code: 1 for failures of the work itself,
// 2 for bad usage or input, 3 for not found, 4 for auth, 5 for conflicts, 6 for unavailable.
func exitCode(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	switch erasure.ErrorCode(err) {
	case erasure.EINVALID, erasure.ETOOLARGE:
		return 2
	case erasure.ENOTFOUND, erasure.EGONE:
		return 3
	case erasure.EUNAUTHORIZED, erasure.EFORBIDDEN:
		return 4
	case erasure.ECONFLICT:
		return 5
	case erasure.EUNAVAILABLE:
		return 6
	}
	return 1
}

// usageError is a mistake in the command line.
type usageError string

func (e usageError) Error() string { return string(e) }

// oneLine renders err on one line; an *erasure.Error with details gets them on following lines.
func oneLine(err error) string {
	var e *erasure.Error
	if errors.As(err, &e) {
		msg := e.Message
		for _, d := range e.Details {
			msg += "\n  " + d
		}
		return msg
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

// flags returns a FlagSet for a command that reports errors instead of exiting or printing
// (parse's error names the flag and the command's usage). Given a probe as stderr, it hands
// the probe the FlagSet (help and completions read the flags so).
func flags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("erasure "+name, flag.ContinueOnError)
	if p, ok := stderr.(*probe); ok {
		fs.SetOutput(p)
		p.fs = fs
		return fs
	}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args with fs, accepting flags after positional arguments too.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	if _, ok := fs.Output().(*probe); ok {
		return nil, errProbe
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			msg := err.Error()
			if c, ok := commands[strings.TrimPrefix(fs.Name(), "erasure ")]; ok {
				_, use := synopsis(c)
				msg += fmt.Sprintf(" (usage: erasure %s; see `%s --help`)", use, fs.Name())
			}
			return nil, usageError(msg)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
