package state

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The fuzz tests put a password, quoted or escaped as its context requires, into a conninfo, a
// URL or an SQL statement, and check that Redact's output does not depend on the password at
// all: it is the output for the password "x". So no character of the password can survive.
// Their seeds are in testdata/fuzz, which plain `go test` runs.

// printablePassword reports whether pw is a password the tests use: non-empty, valid UTF-8,
// printable characters only (a space included).
func printablePassword(pw string) bool {
	if pw == "" || !utf8.ValidString(pw) {
		return false
	}
	for _, r := range pw {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// checkHidden fails t if Redact(build(pw)) differs from Redact(build("x")) or shows pw.
func checkHidden(t *testing.T, build func(pw string) string, pw string) {
	t.Helper()
	in := build(pw)
	out := Redact(in)
	ref := Redact(build("x"))
	if out != ref {
		t.Fatalf("redacted output depends on the password %q\n  in:  %q\n out:  %q\n ref:  %q", pw, in, out, ref)
	}
	if strings.Contains(out, pw) && !strings.Contains(ref, pw) {
		t.Fatalf("password %q survives in %q", pw, out)
	}
	if again := Redact(out); again != out {
		t.Fatalf("Redact not idempotent: %q then %q", out, again)
	}
}

// conninfoQuoted quotes v as a libpq conninfo value in single quotes.
func conninfoQuoted(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// conninfoBare escapes v as an unquoted libpq conninfo value.
func conninfoBare(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\\' || c == '\'' || isSpace(c) {
			b.WriteByte('\\')
		}
		b.WriteByte(v[i])
	}
	return b.String()
}

// sqlQuoted quotes v as a standard SQL literal.
func sqlQuoted(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }

// sqlEscapeString quotes v as an E'...' literal.
func sqlEscapeString(v string) string {
	return "E'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

var conninfoForms = []func(pw string) string{
	func(pw string) string {
		return "host=blue.internal port=5432 user=pgbg_repl password=" + conninfoQuoted(pw) + " dbname=app sslmode=require"
	},
	func(pw string) string {
		return "host=blue.internal port=5432 user=pgbg_repl password=" + conninfoBare(pw) + " dbname=app"
	},
	func(pw string) string { return "user=pgbg_repl PASSWORD = " + conninfoQuoted(pw) },
	func(pw string) string { return "password=" + conninfoBare(pw) },
	func(pw string) string {
		return "connect to `host=blue password=" + conninfoBare(pw) + " user=u`: failed"
	},
}

func FuzzRedactConninfo(f *testing.F) {
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if !printablePassword(pw) {
			return
		}
		checkHidden(t, conninfoForms[int(form)%len(conninfoForms)], pw)
	})
}

func pgURL(scheme string, user *url.Userinfo, query string) string {
	u := url.URL{Scheme: scheme, User: user, Host: "blue.internal:5432", Path: "/app", RawQuery: query}
	return u.String()
}

var urlForms = []func(pw string) string{
	func(pw string) string { return pgURL("postgres", url.UserPassword("pgbg_repl", pw), "sslmode=require") },
	func(pw string) string { return pgURL("postgresql", url.UserPassword("pgbg_repl", pw), "") },
	func(pw string) string {
		return "dial " + pgURL("postgres", url.UserPassword("pgbg_repl", pw), "") + ": connection refused"
	},
	func(pw string) string {
		return pgURL("postgres", url.User("pgbg_repl"), "sslmode=require&password="+url.QueryEscape(pw)+"&application_name=pgbg")
	},
	func(pw string) string { return pgURL("postgresql", nil, "password="+url.QueryEscape(pw)) },
}

func FuzzRedactURL(f *testing.F) {
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if !printablePassword(pw) {
			return
		}
		checkHidden(t, urlForms[int(form)%len(urlForms)], pw)
	})
}

var sqlForms = []func(pw string) (string, bool){
	func(pw string) (string, bool) {
		return `CREATE ROLE "pgbg_repl" WITH LOGIN REPLICATION PASSWORD ` + sqlQuoted(pw), true
	},
	func(pw string) (string, bool) {
		return "ALTER ROLE pgbg_repl WITH ENCRYPTED PASSWORD " + sqlEscapeString(pw) + " VALID UNTIL 'infinity'", true
	},
	func(pw string) (string, bool) {
		conn := "host=blue port=5432 user=pgbg_repl password=" + conninfoQuoted(pw) + " dbname=app"
		return "CREATE SUBSCRIPTION pgbg_all CONNECTION " + sqlQuoted(conn) + " PUBLICATION pgbg_all WITH (enabled = false)", true
	},
	func(pw string) (string, bool) {
		conn := "host=blue user=pgbg_repl password=" + conninfoBare(pw)
		return "ALTER SUBSCRIPTION pgbg_all CONNECTION " + sqlEscapeString(conn), true
	},
	func(pw string) (string, bool) {
		conn := pgURL("postgres", url.UserPassword("pgbg_repl", pw), "")
		return "CREATE SUBSCRIPTION s CONNECTION " + sqlQuoted(conn) + " PUBLICATION p", true
	},
	func(pw string) (string, bool) {
		// A dollar-quoted literal cannot hold its own delimiter.
		return "ALTER ROLE r PASSWORD $pw$" + pw + "$pw$ LOGIN", !strings.Contains(pw, "$")
	},
}

func FuzzRedactSQL(f *testing.F) {
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if !printablePassword(pw) {
			return
		}
		build := sqlForms[int(form)%len(sqlForms)]
		if _, ok := build(pw); !ok {
			return
		}
		checkHidden(t, func(pw string) string { s, _ := build(pw); return s }, pw)
	})
}

func FuzzRedactJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, pw string, form uint8) {
		if !printablePassword(pw) {
			return
		}
		checkHidden(t, func(pw string) string {
			v, _ := json.Marshal(pw)
			if form%2 == 1 {
				return `{"username": "pgbg_repl", "password": ` + string(v) + `}`
			}
			return `{"username":"pgbg_repl","password":` + string(v) + `,"host":"blue.internal"}`
		}, pw)
	})
}

// FuzzRedactAny feeds Redact arbitrary text: it must not panic, must be idempotent, and must
// never make text longer than the masks it adds can explain.
func FuzzRedactAny(f *testing.F) {
	f.Add("host=h password='a b' CONNECTION E'x' postgres://u:p@h")
	f.Fuzz(func(t *testing.T, s string) {
		out := Redact(s)
		if again := Redact(out); again != out {
			t.Fatalf("Redact not idempotent on %q: %q then %q", s, out, again)
		}
	})
}
