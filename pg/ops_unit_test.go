package pg

import (
	"strings"
	"testing"
)

func TestQuoteLiteralLikeQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{"1.6": "'1.6'", "it's": "'it''s'", `a\b`: `E'a\\b'`, `a\'b`: `E'a\\''b'`} {
		if got := QuoteLiteral(in); got != want {
			t.Errorf("QuoteLiteral(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestSubscriptionStatementsHideThePassword(t *testing.T) {
	p := SubscriptionParams{On: "green", Name: "pgbg_all", Publication: "pgbg_all", Slot: "pgbg_all",
		Conninfo: "host=blue user=r password=s3cret", CopyData: true}
	var all []string
	for _, s := range p.Statements() {
		all = append(all, s.Display())
	}
	text := strings.Join(all, "\n")
	if strings.Contains(text, "s3cret") {
		t.Fatalf("the password shows:\n%s", text)
	}
	for _, want := range []string{"BEGIN", "SET LOCAL log_statement = 'none'", "set_config('pgbg.conninfo', '********', true)",
		"CREATE SUBSCRIPTION \"pgbg_all\" CONNECTION 'host=blue user=r password=********'", "copy_data = true", "COMMIT"} {
		if !strings.Contains(text, want) {
			t.Errorf("statements lack %q:\n%s", want, text)
		}
	}
	// The secret is still what the server gets.
	args, err := p.Statements()[4].bind()
	if err != nil || args[1] != "host=blue user=r password=s3cret" {
		t.Fatalf("bound %v, %v", args, err)
	}
}

func TestDumpCommandKeepsThePasswordOut(t *testing.T) {
	c, err := DumpParams{PgDump: "/bin/pg_dump", Conninfo: "host=127.0.0.1 port=5432 dbname=app user=me password=s3cret", Schemas: []string{"public"}, Extensions: []string{"pg_trgm"}}.Command()
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); strings.Contains(got, "s3cret") || !strings.Contains(got, `'--extension="pg_trgm"'`) || !strings.Contains(got, "'host=127.0.0.1 port=5432 dbname=app user=me'") {
		t.Fatalf("command %s", got)
	}
	env := DumpParams{Conninfo: "host=h user=me password=s3cret sslmode=require"}.env()
	if strings.Join(env, " ") != "PGPASSWORD=s3cret PGCONNECT_TIMEOUT=10 PGSSLMODE=require" {
		t.Fatalf("env %v", env)
	}
}

func TestSchemaApplySummary(t *testing.T) {
	before := SchemaApplyParams{On: "green"}.Statements()
	after := SchemaApplyParams{On: "green", Script: "\\connect x\nCREATE SCHEMA s;\nCREATE TABLE s.t();\n", DropIndexes: []Rel{{"s", "t_x"}}}.Statements()
	if len(before) != 3 || len(after) != 4 || after[2].String() != `DROP INDEX "s"."t_x"` {
		t.Fatalf("statements %v / %v", before, after)
	}
	d := DigestOf([]byte("CREATE SCHEMA IF NOT EXISTS s;\nCREATE TABLE s.t();\n"))
	if !strings.HasPrefix(before[1].String(), schemaSummaryPrefix+"<") || after[1].String() != schemaSummaryPrefix+"51 bytes, sha256 "+d.SHA256 || d.Bytes != 51 {
		t.Fatalf("summary %q / %q", before[1].String(), after[1].String())
	}
}

func TestAnalyzeStatements(t *testing.T) {
	ss := AnalyzeParams{On: "green", Tables: []Rel{{"public", "big"}, {"public", "parent"}}, Jobs: 4}.Statements()
	var got []string
	for _, s := range ss {
		got = append(got, s.Display())
	}
	want := []string{`SET statement_timeout = 0  -- on each of the 2 connections`, `ANALYZE "public"."big"  -- largest first, 2 at a time`,
		`ANALYZE "public"."parent"`, `RESET statement_timeout  -- on each of the 2 connections`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s", strings.Join(got, "\n"))
	}
}

// The drain target is where the walsender's position ends up once it has
// read the last record: right after a page header, that is the page's
// start.
func TestLastRecordEnd(t *testing.T) {
	for in, want := range map[string]string{
		"0/3000060": "0/3000060", // mid-page
		"0/3002018": "0/3002000", // after a short page header (24 bytes)
		"1/4000028": "1/4000028", // 40 bytes in: a segment's long header, or a record's end
		"0/4002028": "0/4002028",
		"0/3002000": "0/3002000", // a page's start itself
		"0/3002030": "0/3002030", // past the header: a record ended there
	} {
		at, err := ParseLSN(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := LastRecordEnd(at).String(); got != want {
			t.Errorf("LastRecordEnd(%s) = %s, want %s", in, got, want)
		}
	}
}
