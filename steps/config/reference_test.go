package config

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// referencePath is the configuration reference, which lists every key of
// Config with its default, one table row each.
var referencePath = filepath.Join("..", "..", "docs", "configuration.md")

// The default cell's two markers; anything else is a value, compared.
const (
	computedMark = "computed:"
	requiredMark = "required"
)

// TestReferenceMatchesDefaults holds docs/configuration.md to the code:
// every key of Config (its yaml tags, lists as name[]) has exactly one row
// and every row names a key; each row's default is what Parse gives a file
// that leaves the key out (rendered as the top of that file says); and of
// the keys the smallest valid file sets, those marked required, and only
// those, are refused when it leaves them out.
// Change a constant of defaults.go and this fails until the row says so.
func TestReferenceMatchesDefaults(t *testing.T) {
	rows, err := readReference(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	keys := configKeys(reflect.TypeOf(Config{}), "")
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
	}

	seen := map[string]int{}
	for _, r := range rows {
		seen[r.key]++
		if !known[r.key] {
			t.Errorf("%s:%d: %q is not a key of the configuration", referencePath, r.line, r.key)
		}
	}
	for _, k := range keys {
		switch n := seen[k]; {
		case n == 0:
			t.Errorf("%s: no row for %s (add `| %s | default | what it does |`)", referencePath, k, k)
		case n > 1:
			t.Errorf("%s: %d rows for %s; want one", referencePath, n, k)
		}
	}

	parsed, err := Parse([]byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.Notices) > 0 {
		t.Fatalf("the smallest file gives notices: %q", parsed.Notices)
	}
	// A key the smallest file sets has, as its default, what a file without
	// it gets: the empty configuration, defaulted.
	var empty Config
	empty.Defaults()
	set := setKeys(t, minimalConfig)

	for _, r := range rows {
		if !known[r.key] {
			continue
		}
		switch {
		case strings.HasPrefix(r.def, computedMark):
			continue
		case r.def == requiredMark && set[r.key]:
			err := parseWithout(t, r.key)
			if last := lastSegment(r.key); err == nil || !strings.Contains(err.Error(), last) {
				t.Errorf("%s:%d: %s is marked required, but the smallest file without it gives %v", referencePath, r.line, r.key, err)
			}
			continue
		case r.def == requiredMark:
			// The smallest file sets every key a file must set; a
			// list's entries it has none of say theirs here.
			if !strings.Contains(r.key, "[]") {
				t.Errorf("%s:%d: %s is marked required, but the smallest valid file (testdata/minimal.yaml) does without it", referencePath, r.line, r.key)
			}
			continue
		case set[r.key] && !oneOfKeys[r.key]:
			if err := parseWithout(t, r.key); err != nil {
				t.Errorf("%s:%d: %s has a default, but the smallest file without it is refused (mark it required): %v", referencePath, r.line, r.key, err)
			}
		}
		from := reflect.ValueOf(parsed).Elem()
		if set[r.key] {
			from = reflect.ValueOf(&empty).Elem()
		}
		v, err := valueAt(from, strings.Split(r.key, "."))
		if err != nil {
			t.Errorf("%s:%d: %s: %v", referencePath, r.line, r.key, err)
			continue
		}
		if got := render(v); got != r.def {
			t.Errorf("%s:%d: %s: the reference says %q, Parse gives %q", referencePath, r.line, r.key, r.def, got)
		}
	}
}

// refRow is one row of a key table: its key and its default cell, with
// the backticks taken out.
type refRow struct {
	line     int
	key, def string
}

// readReference reads every row of the tables whose header is
// | key | default | what it does |. Cells are split at each | that is not
// escaped as \|; backticks are dropped from the key and the default.
func readReference(path string) ([]refRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rows []refRow
	inTable := false
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := splitRow(line)
		if len(cells) == 3 && cells[0] == "key" && cells[1] == "default" && cells[2] == "what it does" {
			inTable = true
			continue
		}
		if !inTable || strings.Trim(cells[0], "-: ") == "" {
			continue // another table, or the header's separator
		}
		if len(cells) != 3 {
			return nil, fmt.Errorf("%s:%d: a key row has 3 cells, this one %d", path, n, len(cells))
		}
		rows = append(rows, refRow{line: n, key: strings.Trim(cells[0], "` "), def: strings.ReplaceAll(cells[1], "`", "")})
	}
	return rows, sc.Err()
}

// splitRow splits a table row into its trimmed cells.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// configKeys lists every key path under t by its yaml tags: a section (a
// struct) is not a key, its fields are; a list of sections is a key, and
// so is each field of its elements, as name[].field.
func configKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		path := prefix + name
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			out = append(out, configKeys(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, path)
			out = append(out, configKeys(ft.Elem(), path+"[].")...)
		default:
			out = append(out, path)
		}
	}
	return out
}

// valueAt follows a key path from v. Past a list (name[]) it follows the
// list's first element, or an element that sets nothing when it has none.
func valueAt(v reflect.Value, path []string) (reflect.Value, error) {
	for i, seg := range path {
		name, list := strings.CutSuffix(seg, "[]")
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v = reflect.Zero(v.Type().Elem())
			} else {
				v = v.Elem()
			}
		}
		f, ok := fieldByTag(v, name)
		if !ok {
			return v, fmt.Errorf("no field with yaml tag %q in %s", name, v.Type())
		}
		v = f
		if list && i < len(path)-1 {
			if v.Len() > 0 {
				v = v.Index(0)
			} else {
				v = reflect.Zero(v.Type().Elem())
			}
		}
	}
	return v, nil
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	for i := 0; i < v.NumField(); i++ {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// render writes a value as the reference's default cells do: durations as
// Duration.String (10s, 1m10s), numbers in digits, strings and booleans as
// they are; an empty string, an empty list and an unset pointer as -; a
// list as [a, b], a list of sections as [{key: value}] with the keys it sets.
func render(v reflect.Value) string {
	if v.Type() == durationType {
		return v.Interface().(Duration).String()
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return "-"
		}
		return render(v.Elem())
	case reflect.String:
		if v.String() == "" {
			return "-"
		}
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Slice:
		if v.Len() == 0 {
			return "-"
		}
		items := make([]string, v.Len())
		for i := range items {
			items[i] = render(v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case reflect.Struct:
		var fields []string
		for i := 0; i < v.NumField(); i++ {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" && !v.Field(i).IsZero() {
				fields = append(fields, tag+": "+render(v.Field(i)))
			}
		}
		return "{" + strings.Join(fields, ", ") + "}"
	}
	return fmt.Sprint(v.Interface())
}

// setKeys returns the key paths a configuration text sets, lists as name[].
func setKeys(t *testing.T, text string) map[string]bool {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(text), &root); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			path, val := prefix+n.Content[i].Value, n.Content[i+1]
			out[path] = true
			switch val.Kind {
			case yaml.MappingNode:
				walk(val, path+".")
			case yaml.SequenceNode:
				for _, item := range val.Content {
					if item.Kind == yaml.MappingNode {
						walk(item, path+"[].")
					}
				}
			}
		}
	}
	walk(root.Content[0], "")
	return out
}

// oneOfKeys are keys the smallest file sets that are one way among
// several to give what a file must give: the password's source (env,
// pgpass, pgpass_file or secret_arn), a PgBouncer's ini (ini, ini with ssh,
// or repoint_command). Left out alone the file is refused, yet none of
// them is required.
var oneOfKeys = map[string]bool{"replication.password.env": true, "cutover.pgbouncer[].ini": true}

func lastSegment(key string) string {
	return strings.TrimSuffix(key[strings.LastIndexByte(key, '.')+1:], "[]")
}

// parseWithout drops key from the smallest file (from every entry of a
// list on its path) and returns what Parse says of the rest.
func parseWithout(t *testing.T, key string) error {
	t.Helper()
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(minimalConfig), &root); err != nil {
		t.Fatal(err)
	}
	var drop func(n *yaml.Node, path []string)
	drop = func(n *yaml.Node, path []string) {
		name, list := strings.CutSuffix(path[0], "[]")
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != name {
				continue
			}
			if len(path) == 1 {
				n.Content = append(n.Content[:i], n.Content[i+2:]...)
				return
			}
			if list {
				for _, item := range n.Content[i+1].Content {
					drop(item, path[1:])
				}
			} else {
				drop(n.Content[i+1], path[1:])
			}
		}
	}
	drop(root.Content[0], strings.Split(key, "."))
	text, err := yaml.Marshal(&root)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(text)
	return err
}

// TestReferenceKeysWalk keeps the test's own walk honest: it finds the keys
// the reference is checked against, a list's fields among them, and no
// field that is not read from the file.
func TestReferenceKeysWalk(t *testing.T) {
	paths := configKeys(reflect.TypeOf(Config{}), "")
	sort.Strings(paths)
	for _, want := range []string{"strategy", "cutover.drain_timeout", "cutover.pgbouncer", "cutover.pgbouncer[].ssh.host", "publications[].name", "alerts.events"} {
		if i := sort.SearchStrings(paths, want); i == len(paths) || paths[i] != want {
			t.Errorf("the walk misses %s", want)
		}
	}
	for _, p := range paths {
		if p == "path" || p == "notices" || strings.HasPrefix(p, "cutover.pgbouncer[].ssh[]") {
			t.Errorf("the walk lists %s", p)
		}
	}
}
