package pg

import (
	"reflect"
	"strings"
	"testing"
)

func TestDumpRoles(t *testing.T) {
	script := `
ALTER TABLE public.accounts OWNER TO app;
ALTER TABLE public."OrderItems" OWNER TO "Mixed ""Role""";
ALTER SCHEMA public OWNER TO pg_database_owner;
GRANT SELECT ON TABLE public.accounts TO pgbg_repl;
GRANT ALL ON SCHEMA public TO PUBLIC;
REVOKE ALL ON TABLE public.accounts FROM reporter;
GRANT SELECT ON TABLE public.accounts TO auditor WITH GRANT OPTION;
ALTER DEFAULT PRIVILEGES FOR ROLE app IN SCHEMA public GRANT SELECT ON TABLES TO readers;
COMMENT ON TABLE public.x IS 'OWNER TO nobody;';
`
	want := []string{"Mixed \"Role\"", "app", "auditor", "pg_database_owner", "pgbg_repl", "readers", "reporter"}
	if got := DumpRoles(script); !reflect.DeepEqual(got, want) {
		t.Errorf("DumpRoles = %q, want %q", got, want)
	}
}

func TestQuoteConninfoValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain":      `'plain'`,
		"it's":       `'it\'s'`,
		`back\slash`: `'back\\slash'`,
		"sp ace=x":   `'sp ace=x'`,
		"":           `''`,
	} {
		if got := QuoteConninfoValue(in); got != want {
			t.Errorf("QuoteConninfoValue(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestDiffLines(t *testing.T) {
	a := []string{"a", "b", "d", "f"}
	b := []string{"b", "c", "d", "e"}
	onlyA, onlyB := DiffLines(a, b)
	if !reflect.DeepEqual(onlyA, []string{"a", "f"}) || !reflect.DeepEqual(onlyB, []string{"c", "e"}) {
		t.Errorf("DiffLines: only a %q, only b %q", onlyA, onlyB)
	}
	if x, y := DiffLines(a, a); x != nil || y != nil {
		t.Errorf("identical lists differ: %q %q", x, y)
	}
}

func TestRelStringQuotes(t *testing.T) {
	if got := (Rel{"public", `Order"Items`}).String(); got != `"public"."Order""Items"` {
		t.Errorf("Rel.String = %s", got)
	}
	op := CreatePublicationsParams{On: "blue", Publications: []PublicationSpec{{Name: "p", Tables: []Rel{{"public", "a"}, {"inv", "B"}}}}}
	if stmt := op.Statements()[0].String(); stmt != `CREATE PUBLICATION "p" FOR TABLE "public"."a", "inv"."B"` {
		t.Errorf("CreatePublicationsParams.Statements = %s", stmt)
	}
}

func TestScramVerifierShape(t *testing.T) {
	v, err := ScramVerifier("secret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, "SCRAM-SHA-256$4096:") || strings.Contains(v, "secret") || strings.Count(v, "$") != 2 {
		t.Errorf("verifier %q", v)
	}
	if w, _ := ScramVerifier("secret"); w == v {
		t.Error("two verifiers share a salt")
	}
}

func FuzzDumpRoles(f *testing.F) {
	f.Add("ALTER TABLE t OWNER TO app;\nGRANT SELECT ON t TO \"x\"\"y\";\n")
	f.Add("REVOKE ALL ON t FROM \"\";\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range DumpRoles(s) {
			if strings.EqualFold(r, "public") {
				t.Errorf("PUBLIC listed as a role in %q", s)
			}
		}
	})
}
