package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is the release, set when building one: go build -ldflags "-X main.version=1.4.0".
// Left empty, the module's version from the build information is used ("(devel)" for a build
// from a checkout), with the commit it was built from.
var version string

func init() {
	command("version", "print the version, the commit it was built from and the Go version: version [--json]", runVersion)
}

// buildVersion is what `erasure version` says of the binary.
type buildVersion struct {
	Version  string `json:"version"`
	Commit   string `json:"commit,omitempty"`
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func currentVersion() buildVersion {
	v := buildVersion{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v.Version == "" {
			v.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Commit = s.Value
			case "vcs.time":
				v.Time = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	return v
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flags("version", stderr)
	asJSON := fs.Bool("json", false, "print it as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("version takes no arguments")
	}
	v := currentVersion()
	if *asJSON {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return nil
	}
	line := "erasure " + v.Version
	if v.Commit != "" {
		commit := v.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		if v.Modified {
			commit += "+modified"
		}
		line += " (commit " + commit
		if v.Time != "" {
			line += ", " + v.Time
		}
		line += ")"
	}
	fmt.Fprintf(stdout, "%s %s %s\n", line, v.Go, v.Platform)
	return nil
}
