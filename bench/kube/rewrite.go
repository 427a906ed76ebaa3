package kube

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Import paths of Kubernetes' stream stack as the kubelet-side handlers
// (k8s.io/cri-streaming) import them, and what they become when the
// handlers are rebuilt on this library.
const (
	KubeHTTPStream = "k8s.io/streaming/pkg/httpstream"
	KubeSPDY       = "k8s.io/streaming/pkg/httpstream/spdy"
	OurHTTPStream  = "github.com/httpstream-go/httpstream"
	OurUpgrade     = "github.com/httpstream-go/httpstream/upgrade"
)

// importRewrites maps a Kubernetes import path to ours. Only exact paths
// are rewritten: k8s.io/streaming/pkg/httpstream/wsstream (the WebSocket
// path, which the SPDY executor never takes) stays as it is.
var importRewrites = map[string]string{
	KubeHTTPStream: OurHTTPStream,
	KubeSPDY:       OurUpgrade,
}

// nameRewrites maps "<kube import path>.<Name>" to the name this library
// gives the same thing, for the names that differ. The handlers use
// httpstream.{Handshake,Stream,Connection} and spdy.NewResponseUpgrader,
// which this library spells the same way (API.md), so it is empty; a name
// that is missing on our side fails the build with the compiler's message.
var nameRewrites = map[string]string{}

// RewrittenFile records one file that was rewritten, for the logs.
type RewrittenFile struct {
	Package  string // import path
	Original string // file in the module cache
	Copy     string // rewritten copy
}

// listedPackage is the part of `go list -json` output that matters here.
type listedPackage struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Imports    []string
	Standard   bool
	Module     *listedModule
}

type listedModule struct {
	Path, Version, Dir string
	Main               bool
}

// WriteModfile prepares the build of main (a package of the module in
// moduleDir) over this library. Every module that main is built from,
// other than k8s.io/streaming itself and this module, and that has a
// package importing Kubernetes' httpstream or spdy package, is copied from
// the module cache into dir; in the copy, each file that imports either
// package has its imports pointed at this library (the spdy import keeps
// its name, `spdy "github.com/httpstream-go/httpstream/upgrade"`, so the
// code that uses it is unchanged). It then writes dir/rewritten.mod: this
// module's go.mod plus a replace of each copied module by its copy (and
// rewritten.sum, a copy of go.sum), to be passed to the go command as
// -modfile. The module cache and this module's go.mod are not touched.
// It checks that, so built, main no longer depends on Kubernetes' SPDY
// stack, and returns the modfile's path and the files it rewrote.
func WriteModfile(goCmd, moduleDir, main, dir string) (string, []RewrittenFile, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	pkgs, err := listDeps(goCmd, moduleDir, "", main)
	if err != nil {
		return "", nil, err
	}
	rewrite := map[string]*listedModule{} // module path -> module
	for _, p := range pkgs {
		if p.Standard || p.Module == nil || p.Module.Main || p.Module.Path == "k8s.io/streaming" || !importsAny(p.Imports) {
			continue
		}
		rewrite[p.Module.Path] = p.Module
	}
	if len(rewrite) == 0 {
		return "", nil, fmt.Errorf("no package that %s is built from imports %s or %s: nothing to rewrite", main, KubeHTTPStream, KubeSPDY)
	}
	var files []RewrittenFile
	var replaces strings.Builder
	for _, m := range sortedModules(rewrite) {
		copyDir := filepath.Join(dir, filepath.FromSlash(m.Path)+"@"+m.Version)
		rewritten, err := copyModule(m, copyDir)
		if err != nil {
			return "", nil, err
		}
		files = append(files, rewritten...)
		fmt.Fprintf(&replaces, "replace %s => %s\n", m.Path, copyDir)
	}
	gomod, err := os.ReadFile(filepath.Join(moduleDir, "go.mod"))
	if err != nil {
		return "", nil, err
	}
	// The original's replace of this library by ../.. is relative to
	// moduleDir; the modfile lives elsewhere, so make it absolute.
	root, err := filepath.Abs(filepath.Join(moduleDir, "..", ".."))
	if err != nil {
		return "", nil, err
	}
	mod := strings.ReplaceAll(string(gomod), "=> ../..", "=> "+root) + "\n" + replaces.String()
	modfile := filepath.Join(dir, "rewritten.mod")
	if err := os.WriteFile(modfile, []byte(mod), 0o644); err != nil {
		return "", nil, err
	}
	sum, err := os.ReadFile(filepath.Join(moduleDir, "go.sum"))
	if err != nil {
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "rewritten.sum"), sum, 0o644); err != nil {
		return "", nil, err
	}
	pkgs, err = listDeps(goCmd, moduleDir, modfile, main)
	if err != nil {
		return "", nil, err
	}
	for _, p := range pkgs {
		if p.ImportPath == KubeSPDY || strings.HasPrefix(p.ImportPath, "github.com/moby/spdystream") {
			return "", nil, fmt.Errorf("after rewriting, %s still depends on %s", main, p.ImportPath)
		}
	}
	return modfile, files, nil
}

func sortedModules(m map[string]*listedModule) []*listedModule {
	out := make([]*listedModule, 0, len(m))
	for _, mod := range m {
		out = append(out, mod)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// copyModule copies module m's tree into dst, writable, rewriting the Go
// files (tests excepted: nothing builds them) that import the Kubernetes
// packages.
func copyModule(m *listedModule, dst string) ([]RewrittenFile, error) {
	var files []RewrittenFile
	err := filepath.WalkDir(m.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(m.Dir, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			out, changed, err := RewriteFile(path, data)
			if err != nil {
				return err
			}
			if changed {
				data = out
				files = append(files, RewrittenFile{
					Package:  m.Path + "/" + filepath.ToSlash(filepath.Dir(rel)),
					Original: path,
					Copy:     target,
				})
			}
		}
		return os.WriteFile(target, data, 0o644)
	})
	return files, err
}

func importsAny(imports []string) bool {
	for _, imp := range imports {
		if _, ok := importRewrites[imp]; ok {
			return true
		}
	}
	return false
}

// listDeps runs `go list -deps -json` on main, with the modfile if any.
func listDeps(goCmd, moduleDir, modfile, main string) ([]listedPackage, error) {
	args := []string{"list", "-deps", "-json=ImportPath,Dir,GoFiles,Imports,Standard,Module"}
	if modfile != "" {
		args = append(args, "-modfile", modfile)
	}
	args = append(args, main)
	cmd := exec.Command(goCmd, args...)
	cmd.Dir = moduleDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// RewriteFile points the imports of one Go file at this library and renames
// the selectors listed in nameRewrites. changed is false when the file
// imports neither Kubernetes path.
func RewriteFile(filename string, src []byte) (out []byte, changed bool, err error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.ParseComments)
	if err != nil {
		return nil, false, err
	}
	local := map[string]string{} // local package name -> kube import path
	for _, spec := range f.Imports {
		path, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return nil, false, err
		}
		to, ok := importRewrites[path]
		if !ok {
			continue
		}
		name := filepath.Base(path) // both Kubernetes packages are named after their directory
		if spec.Name != nil {
			name = spec.Name.Name
		} else if filepath.Base(to) != name {
			spec.Name = ast.NewIdent(name)
		}
		if name == "_" || name == "." {
			return nil, false, fmt.Errorf("%s: import %q as %s: not supported", filename, path, name)
		}
		spec.Path.Value = strconv.Quote(to)
		local[name] = path
		changed = true
	}
	if !changed {
		return src, false, nil
	}
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Obj == nil {
			if path, ok := local[x.Name]; ok {
				if to, ok := nameRewrites[path+"."+sel.Sel.Name]; ok {
					sel.Sel.Name = to
				}
			}
		}
		return true
	})
	var buf bytes.Buffer
	buf.WriteString("// Code generated by bench/kube (import rewrite of " + filepath.ToSlash(filename) + "); DO NOT EDIT.\n\n")
	if err := format.Node(&buf, fset, f); err != nil {
		return nil, false, err
	}
	return buf.Bytes(), true, nil
}

// Summary lists rewritten files one a line, sorted.
func Summary(files []RewrittenFile) string {
	lines := make([]string, 0, len(files))
	for _, f := range files {
		lines = append(lines, f.Package+"/"+filepath.Base(f.Original))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
