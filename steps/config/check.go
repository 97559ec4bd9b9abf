package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// The configuration's YAML checked against Config's fields before it is
// decoded, so that every key of the wrong type and every unknown key is
// reported at once, each naming the key, its line, the type expected and
// an example (yaml.v3's decoder stops at a field whose own unmarshaler
// fails, and names Go types rather than keys).

var durationType = reflect.TypeOf(Duration{})

// configExamples are examples for keys whose type alone says too little.
// Keys are paths without list indexes (publications.tables).
var configExamples = map[string]string{
	"strategy":                  "copy",
	"blue.conninfo":             `"host=blue.internal dbname=app user=admin"`,
	"green.conninfo":            `"host=green.internal dbname=app user=admin"`,
	"replication.role":          "pgbg_repl",
	"replication.blue_conninfo": `"host=blue.private dbname=app"`,
	"replication.password.env":  "PGBG_REPL_PASSWORD",
	"publications":              "[{name: pgbg_all}, {name: pgbg_orders, tables: [public.orders]}]",
	"publications.name":         "pgbg_orders",
	"publications.tables":       `[public.orders, public."OrderItems"]`,
	"schemas":                   `[public, inventory, "Sales Dept"]`,
	"app_roles":                 "[app, reporting]",
	"cutover.method":            "pgbouncer",
	"unlogged_tables":           "copy",
	"cutover.max_lag_bytes":     "1048576",
	"cutover.sequence_margin":   "1000",
	"cutover.pgbouncer":         "[{name: pgb1, admin_conninfo: \"host=pgb1 port=6432 dbname=pgbouncer user=pgbouncer\", ini: /etc/pgbouncer/pgbouncer.ini, database: app}]",
	"clone.port":                "5434",
	"aws.security_groups":       "[sg-0a1b2c]",
	"aws.readers":               "[{id: orders-green-2, class: db.r6g.large}]",
	"aws.switch.ssm_delete":     "[/app/db/old-host]",
	"aws.switch.route53.ttl":    "60",
}

// example is the example given for a key of type t.
func example(path string, t reflect.Type) string {
	if ex, ok := configExamples[indexes.ReplaceAllString(path, "")]; ok {
		return ex
	}
	switch {
	case t == durationType:
		return "30s"
	case t.Kind() == reflect.Bool:
		return "true"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "100"
	case t.Kind() == reflect.Slice:
		return "[a, b]"
	case t.Kind() == reflect.Struct:
		return "a block of keys (see pgbluegreen.example.yaml)"
	}
	return "some-text"
}

var indexes = regexp.MustCompile(`\[[0-9]+\]`)

// typeName says what a value of type t is, for people.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int, t.Kind() == reflect.Int64:
		return "an integer"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Struct:
		return "keys and values"
	}
	return "text"
}

// checkNode checks n against type t (path names it) and returns one
// problem per key that is unknown or of the wrong type. The offending
// keys are removed from n, so the rest decodes and is validated too.
func checkNode(n *yaml.Node, t reflect.Type, path string) []string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil
	}
	bad := func(shown string) []string {
		return []string{fmt.Sprintf("config: line %d: %s: %s is not %s (e.g. %s)", n.Line, path, shown, typeName(t), example(path, t))}
	}
	shown := fmt.Sprintf("%q", n.Value)
	switch n.Kind {
	case yaml.MappingNode:
		shown = "a block of keys"
	case yaml.SequenceNode:
		shown = "a list"
	}
	switch {
	case t == durationType:
		if n.Kind != yaml.ScalarNode {
			return bad(shown)
		}
		if _, err := time.ParseDuration(n.Value); err != nil {
			return bad(shown)
		}
	case t.Kind() == reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return bad(shown)
		}
		return checkMapping(n, t, path)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return bad(shown)
		}
		var out []string
		kept := n.Content[:0]
		for i, item := range n.Content {
			p := checkNode(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			out = append(out, p...)
			if len(p) == 0 || item.Kind == yaml.MappingNode && isStruct(t.Elem()) {
				kept = append(kept, item)
			}
		}
		n.Content = kept
		return out
	case n.Kind != yaml.ScalarNode:
		return bad(shown)
	case t.Kind() == reflect.Bool && n.Tag != "!!bool":
		return bad(shown)
	case (t.Kind() == reflect.Int || t.Kind() == reflect.Int64) && n.Tag != "!!int":
		return bad(shown)
	}
	return nil
}

// checkMapping checks each key of a mapping against the struct's yaml
// fields, dropping unknown keys and those of the wrong type.
func checkMapping(n *yaml.Node, t reflect.Type, path string) []string {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = f.Type
		}
	}
	var out []string
	kept := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		ft, ok := fields[k.Value]
		if !ok {
			out = append(out, fmt.Sprintf("config: line %d: unknown key %q (see pgbluegreen.example.yaml for the keys)", k.Line, key))
			continue
		}
		p := checkNode(v, ft, key)
		out = append(out, p...)
		if len(p) == 0 || v.Kind == yaml.MappingNode && isStruct(ft) || v.Kind == yaml.SequenceNode && ft.Kind() == reflect.Slice {
			kept = append(kept, k, v)
		}
	}
	n.Content = kept
	return out
}

// isStruct reports whether t (or what it points to) is a struct other than
// Duration: a block of keys whose own problems were removed, not the block.
func isStruct(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.Struct && t != durationType
}
