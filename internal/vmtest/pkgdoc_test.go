package vmtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// Every package states its contract in exactly one package doc comment.
func TestPackageDocs(t *testing.T) {
	root := ModuleRoot(t)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
			return filepath.SkipDir
		}
		pkgs, err := parser.ParseDir(token.NewFileSet(), path, func(fi fs.FileInfo) bool {
			return !strings.HasSuffix(fi.Name(), "_test.go")
		}, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			return err
		}
		for name, p := range pkgs {
			docs := 0
			for _, f := range p.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" && !strings.HasPrefix(f.Doc.Text(), "Code generated") {
					docs++
				}
			}
			rel, _ := filepath.Rel(root, path)
			if docs != 1 {
				t.Errorf("package %s (%s) has %d package doc comments, want exactly 1", name, rel, docs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
