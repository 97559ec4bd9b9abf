package pg

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdent(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"pgbg_all"}, `"pgbg_all"`},
		{[]string{`we"ird`}, `"we""ird"`},
		{[]string{"public", "OrderItems"}, `"public"."OrderItems"`},
		{[]string{Placeholder("blue's database")}, "<blue's database>"},
		// Only a name alone is a placeholder: a qualified one is quoted.
		{[]string{"public", "<x>"}, `"public"."<x>"`},
	} {
		if got := Ident(c.parts...); got != c.want {
			t.Errorf("Ident(%q) = %s, want %s", c.parts, got, c.want)
		}
	}
}

// TestOneIdentifierQuoter keeps Ident the program's one identifier
// quoter: no other product file quotes through pgx.Identifier (tests may).
func TestOneIdentifierQuoter(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		// The lab cannot import pg (pg's own tests import the lab), so it
		// quotes the few names of its set-up with pgx itself.
		if rel == filepath.Join("pg", "ident.go") || strings.HasPrefix(rel, filepath.Join("pg", "lab")+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), ".Sanitize()") || strings.Contains(string(b), "pgx.Identifier") {
			t.Errorf("%s quotes an identifier itself: call pg.Ident", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
