package state

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// Nothing to hide.
		{"plain log line", "lag 12 MB on slot pgbg_all", "lag 12 MB on slot pgbg_all"},
		{"word password alone", "password authentication failed for user \"repl\"", "password authentication failed for user \"repl\""},
		{"empty", "", ""},
		{"url without password", "postgres://repl@db:5432/app", "postgres://repl@db:5432/app"},
		{"url without userinfo", "postgres://db:5432/app?sslmode=require", "postgres://db:5432/app?sslmode=require"},
		{"password null", "ALTER ROLE repl PASSWORD NULL", "ALTER ROLE repl PASSWORD NULL"},
		{"empty conninfo password", "host=h password= ", "host=h password= "},

		// libpq conninfo.
		{"conninfo", "host=db port=5432 user=repl password=secret dbname=app",
			"host=db port=5432 user=repl password=******** dbname=app"},
		{"conninfo last", "host=db password=secret", "host=db password=********"},
		{"conninfo upper case", "host=db PASSWORD=secret dbname=app", "host=db PASSWORD=******** dbname=app"},
		{"conninfo mixed case", "Password=secret", "Password=********"},
		{"conninfo spaces around =", "host=db password = secret dbname=app", "host=db password = ******** dbname=app"},
		{"conninfo quoted with space", "host=db password = 'sec ret' dbname=app", "host=db password = '********' dbname=app"},
		{"conninfo quoted escaped quote", `password='it\'s a secret' user=u`, `password='********' user=u`},
		{"conninfo quoted escaped backslash", `password='a\\' user=u`, `password='********' user=u`},
		{"conninfo quoted backslash then quote", `password='a\\\'b c' user=u`, `password='********' user=u`},
		{"conninfo unquoted escaped space", `password=sec\ ret user=u`, `password=******** user=u`},
		{"conninfo unquoted quote inside", `password=it's user=u`, `password=******** user=u`},
		{"conninfo unterminated quote", `password='sec ret user=u`, `password='********`},
		{"conninfo doubled quote kept inside", `password='a''b c' user=u`, `password='********' user=u`},
		{"conninfo empty quoted", `password='' user=u`, `password='' user=u`},
		{"sslpassword", "sslkey=k.pem sslpassword=keypass host=h", "sslkey=k.pem sslpassword=******** host=h"},
		{"env var", "PGPASSWORD=secret psql -h db", "PGPASSWORD=******** psql -h db"},
		{"two passwords", "password=a password=b", "password=******** password=********"},
		{"tab separated", "host=h\tpassword=s\tuser=u", "host=h\tpassword=********\tuser=u"},
		{"conninfo in sql literal, doubled quotes", `SELECT dblink_connect('host=h password=''sec ret'' user=u')`,
			`SELECT dblink_connect('host=h password=''********'' user=u')`},

		// JSON.
		{"json secret", `{"username":"repl","password":"se\"c ret","host":"h"}`, `{"username":"repl","password":"********","host":"h"}`},
		{"json spaced", `{"db_password" : "x"}`, `{"db_password" : "********"}`},
		{"json not a string", `{"password": null}`, `{"password": null}`},

		// URLs.
		{"postgres url", "postgres://u:secret@h/db", "postgres://u:********@h/db"},
		{"postgresql url", "postgresql://u:secret@h:5432/db?sslmode=require", "postgresql://u:********@h:5432/db?sslmode=require"},
		{"url escaped password", "postgres://u:p%40ss%2Fw@h/db", "postgres://u:********@h/db"},
		{"url raw @ in password", "postgres://u:p@ss@h/db", "postgres://u:********@h/db"},
		{"url raw / in password", "postgres://u:pa/ss@h/db", "postgres://u:********@h/db"},
		{"url multi host", "postgres://u:s@h1:5432,h2:5433/db", "postgres://u:********@h1:5432,h2:5433/db"},
		{"url in sentence", "connect to postgres://u:s@h/db failed: timeout", "connect to postgres://u:********@h/db failed: timeout"},
		{"other scheme", "https://admin:hunter2@pgbouncer.internal/", "https://admin:********@pgbouncer.internal/"},
		{"query password", "postgres://h/db?user=u&password=secret&sslmode=require", "postgres://h/db?user=u&password=********&sslmode=require"},
		{"query password first", "postgres://h/db?password=secret", "postgres://h/db?password=********"},
		{"query password fragment", "postgres://h/db?password=secret#x", "postgres://h/db?password=********#x"},
		{"url and query", "postgres://u:a@h/db?password=b", "postgres://u:********@h/db?password=********"},

		// SQL.
		{"create role", "CREATE ROLE repl WITH LOGIN PASSWORD 'secret'", "CREATE ROLE repl WITH LOGIN PASSWORD '********'"},
		{"doubled quotes", "CREATE ROLE repl PASSWORD 'se''cret' LOGIN", "CREATE ROLE repl PASSWORD '********' LOGIN"},
		{"encrypted", "ALTER ROLE repl ENCRYPTED PASSWORD 'md5abc' VALID UNTIL 'infinity'", "ALTER ROLE repl ENCRYPTED PASSWORD '********' VALID UNTIL 'infinity'"},
		{"lower case", "alter user repl password 'x';", "alter user repl password '********';"},
		{"newline before literal", "ALTER ROLE repl PASSWORD\n  'x'", "ALTER ROLE repl PASSWORD\n  '********'"},
		{"E string", `ALTER ROLE repl PASSWORD E'it\'s \\ here' LOGIN`, `ALTER ROLE repl PASSWORD E'********' LOGIN`},
		{"e string lower", `alter role r password e'a''b'`, `alter role r password e'********'`},
		{"U& string", `ALTER ROLE r PASSWORD U&'d\0061t' LOGIN`, `ALTER ROLE r PASSWORD U&'********' LOGIN`},
		{"dollar quoted", "ALTER ROLE r PASSWORD $$a'b$$ LOGIN", "ALTER ROLE r PASSWORD $$********$$ LOGIN"},
		{"dollar tag", "ALTER ROLE r PASSWORD $pw$a$$b$pw$ LOGIN", "ALTER ROLE r PASSWORD $pw$********$pw$ LOGIN"},
		{"unterminated literal", "ALTER ROLE r PASSWORD 'abc", "ALTER ROLE r PASSWORD '********"},
		{"connection", "CREATE SUBSCRIPTION s CONNECTION 'host=h port=5432 user=repl password=secret dbname=app' PUBLICATION p",
			"CREATE SUBSCRIPTION s CONNECTION 'host=h port=5432 user=repl password=******** dbname=app' PUBLICATION p"},
		{"connection quoted password", "CREATE SUBSCRIPTION s CONNECTION 'host=h password=''sec\\''ret'' dbname=app' PUBLICATION p",
			"CREATE SUBSCRIPTION s CONNECTION 'host=h password=''********'' dbname=app' PUBLICATION p"},
		{"connection E string", `ALTER SUBSCRIPTION s CONNECTION E'host=h password=\'a\\\\b\' dbname=app'`,
			`ALTER SUBSCRIPTION s CONNECTION E'host=h password=''********'' dbname=app'`},
		{"connection E string hex escapes", `CONNECTION E'host=h \x70assword=secret'`, `CONNECTION E'host=h password=********'`},
		{"connection url", "CREATE SUBSCRIPTION s CONNECTION 'postgres://repl:se''cret@h/app' PUBLICATION p",
			"CREATE SUBSCRIPTION s CONNECTION 'postgres://repl:********@h/app' PUBLICATION p"},
		{"connection dollar", "CONNECTION $c$host=h password='x y'$c$ PUBLICATION p", "CONNECTION $c$host=h password='********'$c$ PUBLICATION p"},
		{"connection U&", `CONNECTION U&'host=h password=x' PUBLICATION p`, `CONNECTION U&'********' PUBLICATION p`},
		{"connection unterminated", `CONNECTION 'host=h password=x`, `CONNECTION '********`},
		{"connection without password", "CONNECTION 'host=h dbname=app' PUBLICATION p", "CONNECTION 'host=h dbname=app' PUBLICATION p"},
		{"connection word only", "connection refused", "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Redact(tt.in)
			if got != tt.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
			if again := Redact(got); again != got {
				t.Errorf("Redact is not idempotent on %q: %q", got, again)
			}
		})
	}
}

func TestRedactError(t *testing.T) {
	if RedactError(nil) != nil {
		t.Fatal("RedactError(nil) is not nil")
	}
	base := &fs.PathError{Op: "open", Path: "x", Err: fs.ErrNotExist}
	err := RedactError(wrap("connect host=h password=secret", base))
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("secret in %q", err.Error())
	}
	if !strings.Contains(err.Error(), "password=********") {
		t.Errorf("message lost its shape: %q", err.Error())
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Error("errors.Is does not see through RedactError")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe != base {
		t.Error("errors.As does not see through RedactError")
	}
}

type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg + ": " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

func wrap(msg string, err error) error { return &wrapped{msg, err} }

func BenchmarkRedactNoSecret(b *testing.B) {
	line := "wait-catch-up: slot pgbg_all lag 12.4 MB, rate -3.1 MB/s, eta 4s; retained WAL 1.2 GB (reserved)"
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		Redact(line)
	}
}

func BenchmarkRedactSQL(b *testing.B) {
	line := "CREATE SUBSCRIPTION pgbg_all CONNECTION 'host=blue.internal port=5432 user=pgbg_repl password=''s3cr\\''et'' dbname=app sslmode=require' PUBLICATION pgbg_all WITH (copy_data = false, create_slot = false, enabled = false, slot_name = 'pgbg_all')"
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		Redact(line)
	}
}
