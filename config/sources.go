package config

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// A configuration may come in layers: several files, and directories of files, that form one
// configuration (docs/configuration.md#configuration-in-layers).
const (
	// DefaultDir is read after DefaultPath when it exists and no path is given.
	DefaultDir = "/etc/pilotfish/pilotfish.d"
	// MaxFiles is how many files one configuration may be made of.
	MaxFiles = 256
	// MaxTotalSize is how many bytes the files of one configuration may hold together (each
	// stays within MaxFileSize).
	MaxTotalSize = 16 << 20
)

// DefaultPaths is the configuration read when none is named: DefaultPath, then DefaultDir,
// those of them that exist; DefaultPath alone when neither does (so that the error, or the
// wrapper mode of `pilotfish -- COMMAND`, is about it).
func DefaultPaths() []string {
	var out []string
	for _, p := range []string{DefaultPath, DefaultDir} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		out = []string{DefaultPath}
	}
	return out
}

// layerExts are the files a directory contributes, by extension in lower case.
var layerExts = []string{".hcl", ".json"}

// ListFiles returns the files that make up the configuration named by paths, in order: a
// file as it is, a directory as every *.hcl and *.json file directly in it, in lexical order
// (names starting with "." are left out: editors' and Kubernetes' own). A file named twice
// is read once. Paths that do not exist or cannot be listed are diagnostics.
func ListFiles(paths []string) ([]string, hcl.Diagnostics) {
	var (
		out   []string
		diags hcl.Diagnostics
		seen  = map[string]bool{}
	)
	add := func(p string) {
		if key := filepath.Clean(p); !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			diags = append(diags, readError(p, err)...)
			continue
		}
		if !st.IsDir() {
			add(p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			diags = append(diags, readError(p, err)...)
			continue
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			name := e.Name()
			if strings.HasPrefix(name, ".") || !hasLayerExt(name) {
				continue
			}
			// Follow symbolic links (a Kubernetes ConfigMap's files are links); leave
			// directories and devices out.
			if st, err := os.Stat(filepath.Join(p, name)); err != nil || !st.Mode().IsRegular() {
				continue
			}
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			add(filepath.Join(p, name))
		}
	}
	if len(out) > MaxFiles {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many configuration files",
			Detail:  fmt.Sprintf("the configuration is made of %d files, more than %d; see %s", len(out), MaxFiles, limitsDoc),
			Subject: fileStart(out[MaxFiles])})
	}
	return out, diags
}

func hasLayerExt(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range layerExts {
		if ext == e {
			return true
		}
	}
	return false
}

// readSources reads the files within the limits: each within MaxFileSize, all of them
// within MaxTotalSize. Every file that cannot be read is reported.
func readSources(files []string) ([]source, hcl.Diagnostics) {
	var (
		out   []source
		diags hcl.Diagnostics
		total int
	)
	for _, f := range files {
		src, d := readConfig(f)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if total += len(src); total > MaxTotalSize {
			return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Configuration too large",
				Detail:  fmt.Sprintf("the files of the configuration hold more than %d MiB together; see %s", MaxTotalSize>>20, limitsDoc),
				Subject: fileStart(f)})
		}
		out = append(out, source{path: f, src: src})
	}
	return out, diags
}

// source is one file of the configuration and its text.
type source struct {
	path string
	src  []byte
}

func fileStart(path string) *hcl.Range {
	return &hcl.Range{Filename: path, Start: hcl.InitialPos, End: hcl.InitialPos}
}

// at renders a position of the configuration as diagnostics do: FILE:LINE:COL.
func at(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
