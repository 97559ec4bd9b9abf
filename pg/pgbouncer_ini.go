package pg

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/state"

	"github.com/jackc/pgx/v5/pgconn"
)

// PgBouncer's ini file: reading a [databases] entry and repointing it.
// There is no console command to change a database's host: the cutover
// rewrites the entry and RELOADs.

// BouncerEntry is one line of an ini file's [databases] section.
type BouncerEntry struct {
	// Params are the line's key=value pairs in order (host, port, dbname...).
	Params [][2]string
	// Line is the whole line as written.
	Line string
}

// Get returns the value of key in the entry, "" when absent.
func (e BouncerEntry) Get(key string) string {
	for _, kv := range e.Params {
		if kv[0] == key {
			return kv[1]
		}
	}
	return ""
}

// Conninfo renders the entry's parameters as a libpq connection string,
// with extra pairs appended (user=..., sslmode=...).
func (e BouncerEntry) Conninfo(extra ...string) string {
	var parts []string
	for _, kv := range e.Params {
		switch kv[0] {
		case "host", "port", "dbname", "user", "password":
			parts = append(parts, kv[0]+"="+quoteConninfoValue(kv[1]))
		}
	}
	return strings.Join(append(parts, extra...), " ")
}

func quoteConninfoValue(v string) string {
	if v != "" && !strings.ContainsAny(v, ` '\`) {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// ReadBouncerEntry reads the [databases] entry of db from an ini file.
func ReadBouncerEntry(ini, db string) (BouncerEntry, error) {
	b, err := os.ReadFile(ini)
	if err != nil {
		return BouncerEntry{}, fmt.Errorf("read PgBouncer's ini: %w", err)
	}
	_, e, err := findEntry(string(b), db)
	if err != nil {
		return BouncerEntry{}, fmt.Errorf("%s: %w", ini, err)
	}
	return e, nil
}

// findEntry locates db's line in the [databases] section and returns its
// line number.
func findEntry(text, db string) (int, BouncerEntry, error) {
	section := ""
	for n, line := range strings.Split(text, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || t[0] == ';' || t[0] == '#' {
			continue
		}
		if t[0] == '[' && strings.HasSuffix(t, "]") {
			section = strings.ToLower(strings.TrimSpace(t[1 : len(t)-1]))
			continue
		}
		if section != "databases" {
			continue
		}
		key, val, ok := strings.Cut(t, "=")
		if !ok || unquoteIniKey(strings.TrimSpace(key)) != db {
			continue
		}
		params, err := parseEntryParams(strings.TrimSpace(val))
		if err != nil {
			return 0, BouncerEntry{}, fmt.Errorf("line %d: %w", n+1, err)
		}
		return n, BouncerEntry{Params: params, Line: line}, nil
	}
	return 0, BouncerEntry{}, fmt.Errorf("no `%s =` line in the [databases] section", db)
}

func unquoteIniKey(k string) string {
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		return strings.ReplaceAll(k[1:len(k)-1], `""`, `"`)
	}
	return k
}

// parseEntryParams splits `host=a port=5432 dbname='x y'` into pairs.
func parseEntryParams(s string) ([][2]string, error) {
	var out [][2]string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("cannot read %q as key=value", s)
		}
		key := strings.TrimSpace(s[:eq])
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					val.WriteByte(s[i])
					continue
				}
				if s[i] == '\'' {
					break
				}
				val.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated quote in value of %s", key)
			}
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		out = append(out, [2]string{key, val.String()})
	}
	return out, nil
}

// Endpoint is where a PgBouncer database entry points.
type Endpoint struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	DBName string `json:"dbname"`
}

// String is host:port/dbname.
func (e Endpoint) String() string { return fmt.Sprintf("%s:%d/%s", e.Host, e.Port, e.DBName) }

// EndpointOf reads host, port and database from a connection string.
func EndpointOf(conninfo string) (Endpoint, error) {
	cfg, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse connection string: %w", err)
	}
	return Endpoint{Host: cfg.Host, Port: int(cfg.Port), DBName: cfg.Database}, nil
}

// IniBackup is the ini file as it was before RepointIni, for Restore.
type IniBackup struct {
	Path string
	data []byte
	mode os.FileMode
}

// RepointIni rewrites the [databases] entry of db to point at to: host, port
// and dbname are replaced, every other key and line is kept. The file is
// replaced atomically (temp file, fsync, rename) so PgBouncer never reads
// half of it; a copy of the old file is kept next to it (.pgbg-backup) and
// returned for Restore.
func RepointIni(ini, db string, to Endpoint) (*IniBackup, error) {
	return repointIni(ini, IniChange{Database: db, To: to})
}

// repointIni is RepointIni for every entry of ch, in one write.
func repointIni(ini string, ch IniChange) (*IniBackup, error) {
	st, err := os.Stat(ini)
	if err != nil {
		return nil, fmt.Errorf("read PgBouncer's ini: %w", err)
	}
	old, err := os.ReadFile(ini)
	if err != nil {
		return nil, fmt.Errorf("read PgBouncer's ini: %w", err)
	}
	text, err := ch.apply(string(old))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ini, err)
	}
	bk := &IniBackup{Path: ini, data: old, mode: st.Mode().Perm()}
	if err := state.WriteFileLike(ini+".pgbg-backup", old, st); err != nil {
		return nil, fmt.Errorf("keep a backup of PgBouncer's ini: %w", err)
	}
	if err := state.WriteFileLike(ini, []byte(text), st); err != nil {
		return nil, fmt.Errorf("rewrite PgBouncer's ini: %w", err)
	}
	return bk, nil
}

// repointText is an ini file's text with db's entry pointing at to: host,
// port and dbname replaced, every other key and line kept.
func repointText(text, db string, to Endpoint) (string, error) {
	n, entry, err := findEntry(text, db)
	if err != nil {
		return "", err
	}
	params := setParam(entry.Params, "host", to.Host)
	params = setParam(params, "port", strconv.Itoa(to.Port))
	params = setParam(params, "dbname", to.DBName)
	var b strings.Builder
	for i, kv := range params {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0] + "=" + quoteIniValue(kv[1]))
	}
	key, _, _ := strings.Cut(entry.Line, "=")
	lines := strings.Split(text, "\n")
	lines[n] = strings.TrimRight(key, " \t") + " = " + b.String()
	return strings.Join(lines, "\n"), nil
}

// entryPointsAt reports whether an entry's host, port and dbname are to's
// (a missing dbname means the entry's own name, PgBouncer's default).
func entryPointsAt(e BouncerEntry, db string, to Endpoint) bool {
	name := e.Get("dbname")
	if name == "" {
		name = db
	}
	return e.Get("host") == to.Host && e.Get("port") == strconv.Itoa(to.Port) && name == to.DBName
}

// Restore puts the ini file back as it was before RepointIni, atomically.
func (b *IniBackup) Restore() error {
	if b == nil {
		return nil
	}
	st, err := os.Stat(b.Path)
	if err != nil {
		return fmt.Errorf("restore PgBouncer's ini: %w", err)
	}
	if err := state.WriteFileLike(b.Path, b.data, st); err != nil {
		return fmt.Errorf("restore PgBouncer's ini: %w", err)
	}
	return nil
}

func setParam(params [][2]string, key, val string) [][2]string {
	out := append([][2]string(nil), params...)
	for i := range out {
		if out[i][0] == key {
			out[i][1] = val
			return out
		}
	}
	return append(out, [2]string{key, val})
}

func quoteIniValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
