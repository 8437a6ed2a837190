// Package version tells which build of imqtt is running: the main module's
// version and the VCS revision the Go toolchain stamped into the binary
// (debug.ReadBuildInfo). Both binaries print it for --version, imqttd logs
// it at start, and the dashboard shows it.
package version

import (
	"fmt"
	"runtime/debug"
)

// Info is one binary's build.
type Info struct {
	Module   string // the main module's path
	Version  string // its version: a tag, a pseudo-version, or "(devel)" under go run
	Revision string // the VCS revision (full hash), "" when not stamped
	Time     string // the revision's commit time (RFC 3339), "" when not stamped
	Modified bool   // the work tree had uncommitted changes
	Go       string // the toolchain that built it
}

// Get reads the running binary's build information.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "unknown"}
	}
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, Go: bi.GoVersion}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the version and the revision's first 12 characters, with
// "+dirty" for a modified tree: "v0.3.0 1a2b3c4d5e6f", "(devel) 1a2b3c4d5e6f+dirty".
func (in Info) Short() string {
	s := in.Version
	if in.Revision != "" {
		s += " " + in.Revision[:min(12, len(in.Revision))]
		if in.Modified {
			s += "+dirty"
		}
	}
	return s
}

// String is the --version line of the binary named name.
func (in Info) String(name string) string {
	s := fmt.Sprintf("%s %s", name, in.Version)
	if in.Revision != "" {
		s += " (revision " + in.Revision
		if in.Time != "" {
			s += ", " + in.Time
		}
		if in.Modified {
			s += ", modified"
		}
		s += ")"
	}
	if in.Module != "" {
		s += " " + in.Module
	}
	if in.Go != "" {
		s += " " + in.Go
	}
	return s
}
