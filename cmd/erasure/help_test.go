package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelp_EveryCommand: every command answers --help and `erasure help COMMAND` with its
// usage, its flags and the exit codes, on stdout, exit 0, without doing anything; every group
// lists its commands.
func TestHelp_EveryCommand(t *testing.T) {
	t.Setenv("ERASURE_URL", "http://127.0.0.1:1") // a command that ran anyway would fail
	for name, c := range commands {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			words := strings.Fields(name)
			code, out, errOut := run(t, append(words, "--help")...)
			if code != 0 || errOut != "" {
				t.Fatalf("--help: exit %d, stderr %q", code, errOut)
			}
			_, use := synopsis(c)
			if !strings.HasPrefix(out, "usage: erasure "+use+"\n") || !strings.Contains(out, "\nexit codes:\n") || !strings.Contains(out, "  5  conflict") {
				t.Fatalf("--help:\n%s", out)
			}
			if fs := flagsOf(c); fs != nil && hasFlags(fs) && !strings.Contains(out, "\nflags:\n") {
				t.Errorf("flags not shown:\n%s", out)
			}
			for _, h := range [][]string{append([]string{"help"}, words...), append(words, "-h")} {
				if code, again, _ := run(t, h...); code != 0 || again != out {
					t.Errorf("%v: exit %d, another text:\n%s", h, code, again)
				}
			}
		})
	}
	for group, subs := range groups() {
		t.Run(group, func(t *testing.T) {
			code, out, errOut := run(t, group)
			if code != 2 || out != "" || !strings.HasPrefix(errOut, "usage: erasure "+group+" COMMAND") {
				t.Fatalf("the group alone: exit %d %q %q", code, out, errOut)
			}
			for _, s := range subs {
				if !regexp.MustCompile(`(?m)^  ` + s + ` +\S`).MatchString(errOut) {
					t.Errorf("%s is not listed:\n%s", s, errOut)
				}
			}
			if code, help, _ := run(t, group, "--help"); code != 0 || help != errOut {
				t.Errorf("%s --help: exit %d\n%s", group, code, help)
			}
			if code, help, _ := run(t, "help", group); code != 0 || help != errOut {
				t.Errorf("help %s: exit %d\n%s", group, code, help)
			}
		})
	}
}

func TestHelp_Usage(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != 0 || !strings.HasPrefix(out, "usage: erasure COMMAND") || !strings.Contains(out, "exit codes:") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for name := range commands {
		if !strings.Contains(out, "\n  "+name+" ") {
			t.Errorf("%s is not listed", name)
		}
	}
	for _, args := range [][]string{nil, {"--help"}, {"-h"}} {
		if code, again, _ := run(t, args...); code != 0 || again != out {
			t.Errorf("%v: exit %d", args, code)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"recrds"}, `unknown command "recrds": did you mean records?`},
		{[]string{"records", "frob"}, `unknown command "records frob": erasure records takes archive, reconcile, reindex, restore, verify`},
		{[]string{"help", "nothing"}, `unknown command "nothing"`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (run ` + "`erasure help`)"},
	} {
		if code, _, errOut := run(t, tc.args...); code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q; want %q", tc.args, code, errOut, tc.want)
		}
	}
	// A bad flag names itself and the command's usage.
	if code, _, errOut := run(t, "submit", "--bogus"); code != 2 || !strings.Contains(errOut, "flag provided but not defined: -bogus (usage: erasure submit TYPE=VALUE...") {
		t.Errorf("bad flag: exit %d %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "version")
	if code != 0 || !regexp.MustCompile(`^erasure \S+( \(commit [0-9a-f]{12}(\+modified)?(, \S+)?\))? go\S+ \w+/\w+\n$`).MatchString(out) {
		t.Fatalf("exit %d %q", code, out)
	}
	if code, again, _ := run(t, "--version"); code != 0 || again != out {
		t.Fatalf("--version: %d %q", code, again)
	}
	code, out, _ = run(t, "version", "--json")
	if code != 0 || !strings.Contains(out, `"version":`) || !strings.Contains(out, `"go": "go`) {
		t.Fatalf("--json: %d %q", code, out)
	}
	old := version
	version = "1.4.0"
	defer func() { version = old }()
	if _, out, _ := run(t, "version"); !strings.HasPrefix(out, "erasure 1.4.0 ") {
		t.Fatalf("a release build: %q", out)
	}
}

// TestCompletion: each script completes commands, group commands and flags, as generated from
// the commands themselves; bash's is run, and zsh's and fish's too where the shells exist.
func TestCompletion(t *testing.T) {
	scripts := map[string]string{}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := run(t, "completion", sh)
		if code != 0 || errOut != "" {
			t.Fatalf("completion %s: exit %d %q", sh, code, errOut)
		}
		scripts[sh] = out
		// Every command and every flag is in the script.
		t.Run(sh+"/Complete", func(t *testing.T) {
			for name, c := range commands {
				for _, w := range strings.Fields(name) {
					if !strings.Contains(out, w) {
						t.Errorf("%s lacks %q", sh, w)
					}
				}
				if fs := flagsOf(c); fs != nil {
					fs.VisitAll(func(f *flag.Flag) {
						want := flagName(f.Name)
						if sh == "fish" {
							want = "-l " + f.Name
							if len(f.Name) == 1 {
								want = "-s " + f.Name
							}
						}
						if !strings.Contains(out, want) {
							t.Errorf("%s lacks the flag %s of %s", sh, want, name)
						}
					})
				}
			}
		})
	}
	if code, _, errOut := run(t, "completion", "powershell"); code != 2 || !strings.Contains(errOut, "bash, zsh or fish") {
		t.Errorf("an unknown shell: exit %d %q", code, errOut)
	}
	cases := []struct{ line, want string }{
		{"erasure rec", "records"},
		{"erasure records ", "archive reconcile reindex restore verify"},
		{"erasure records archive --d", "--deleted-before --dry-run"},
		{"erasure submit --re", "--reason"},
		{"erasure help rec", "records"},
		{"erasure completion z", "zsh"},
		{"erasure sweep export -", "--format --help -o"},
		{"erasure ver", "version"},
	}
	dir := t.TempDir()
	shells := map[string]func(script, line string) string{
		"bash": func(script, line string) string {
			return fmt.Sprintf(`source %q; COMP_WORDS=(%s); [[ "%s" == *" " ]] && COMP_WORDS+=(""); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _erasure; printf '%%s\n' "${COMPREPLY[@]}"`,
				script, line, line)
		},
		"zsh": func(script, line string) string {
			return fmt.Sprintf(`compdef() { :; }
_describe() { local n=${@[-1]}; print -rl -- ${(P)n} | sed 's/\([^\\]\):.*/\1/; s/\\:/:/g' | grep -- "^$PREFIX"; }
compadd() { shift; print -rl -- ${(M)@:#$PREFIX*}; }
_files() { :; }
source %q
words=(%s); [[ %q == *" " ]] && words+=(""); CURRENT=${#words}; PREFIX=${words[-1]}; _erasure`, script, line, line)
		},
		"fish": func(script, line string) string {
			return fmt.Sprintf(`source %q; complete -C %q | string replace -r '\t.*' ''; true`, script, line)
		},
	}
	for sh, cmdline := range shells {
		t.Run(sh+"/Run", func(t *testing.T) {
			path, err := exec.LookPath(sh)
			if err != nil {
				if sh == "bash" {
					t.Fatalf("bash is needed to check its completion: %v", err)
				}
				t.Logf("%s is not installed: its script is checked by content only", sh)
				return
			}
			script := filepath.Join(dir, "erasure."+sh)
			if err := os.WriteFile(script, []byte(scripts[sh]), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-c"}
			if sh == "zsh" {
				args = []string{"-f", "-c"}
			}
			if out, err := exec.Command(path, append([]string{"-n"}, script)...).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", sh, err, out)
			}
			for _, tc := range cases {
				out, err := exec.Command(path, append(args, cmdline(script, tc.line))...).CombinedOutput()
				if err != nil {
					t.Errorf("%q: %v\n%s", tc.line, err, out)
					continue
				}
				got := strings.Fields(string(out))
				if strings.Join(sorted(got), " ") != strings.Join(sorted(strings.Fields(tc.want)), " ") {
					t.Errorf("%q completes to %q, want %q", tc.line, got, tc.want)
				}
			}
		})
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
