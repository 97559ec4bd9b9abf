package steps

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// Every value a step needs or records has a type: what an operator types
// (`pgbluegreen value set`, the screen's value editor) is checked against
// it before it is recorded, so a malformed value is refused with one line
// instead of failing a later step.

// ValueType is the kind of a value: its name, an example and its check.
type ValueType struct {
	Name    string
	Example string
	check   func(string) error
}

// Validate returns nil when v is a well-formed value of the type, else
// why not, naming the type and an example.
func (t ValueType) Validate(v string) error {
	if strings.TrimSpace(v) != v || v == "" {
		return fmt.Errorf("is empty or has spaces around it: want %s, e.g. %s", t.Name, t.Example)
	}
	if err := t.check(v); err != nil {
		return fmt.Errorf("%q is not %s (%v): e.g. %s", v, t.Name, err, t.Example)
	}
	return nil
}

var (
	lsnType = ValueType{Name: "an LSN", Example: "0/1A2B3C8", check: func(v string) error {
		_, err := pg.ParseLSN(v)
		if err != nil {
			return fmt.Errorf("two hexadecimal numbers of up to 8 digits, X/Y")
		}
		return nil
	}}
	redoType = ValueType{Name: "an LSN and the log file it was read from", Example: "0/3000148 in postgresql.log", check: func(v string) error {
		lsn, file, ok := strings.Cut(v, " in ")
		if _, err := pg.ParseLSN(lsn); err != nil || !ok || file == "" {
			return fmt.Errorf("X/Y in FILE")
		}
		return nil
	}}
	versionType = ValueType{Name: "a PostgreSQL version", Example: "17.5", check: matches(`^[0-9]+(\.[0-9]+)*[a-z0-9]*$`, "digits and dots")}
	tablesType  = ValueType{Name: "a list of tables", Example: `public.events_log, public."OrderItems" (or none)`, check: func(v string) error {
		if v == "none" {
			return nil
		}
		for _, r := range parseRelList(v) {
			if r.Schema == "" || r.Name == "" {
				return fmt.Errorf("schema.table, comma-separated")
			}
		}
		if strings.Count(v, `"`)%2 != 0 {
			return fmt.Errorf("an unbalanced double quote")
		}
		return nil
	}}
	endpointType = ValueType{Name: "an endpoint", Example: "orders-green.cluster-abc.eu-west-1.rds.amazonaws.com (or host:port)", check: func(v string) error {
		host := v
		if h, port, err := net.SplitHostPort(v); err == nil {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("the port is not a number from 1 to 65535")
			}
			host = h
		}
		if !hostname.MatchString(host) && net.ParseIP(host) == nil {
			return fmt.Errorf("a host name or an IP address")
		}
		return nil
	}}
	awsIDType = ValueType{Name: "an AWS identifier", Example: "orders-blue-pre-upgrade (or an ARN)", check: func(v string) error {
		if strings.HasPrefix(v, "arn:") || awsID.MatchString(v) && !strings.Contains(v, "--") && !strings.HasSuffix(v, "-") {
			return nil
		}
		return fmt.Errorf("a letter, then letters, digits and single hyphens, at most 255")
	}}
	timestampType = ValueType{Name: "a timestamp", Example: "2025-06-01T12:00:00Z", check: func(v string) error {
		if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
			return fmt.Errorf("RFC 3339, with a time zone")
		}
		return nil
	}}
	onOffType = ValueType{Name: "on or off", Example: "on", check: func(v string) error {
		if v != "on" && v != "off" {
			return fmt.Errorf("on or off")
		}
		return nil
	}}
	fileType = ValueType{Name: "a file name", Example: "cutover-20250601T120000Z.json", check: func(v string) error {
		if strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("one line")
		}
		return nil
	}}
	changesType = ValueType{Name: "a JSON list of recorded changes", Example: `[{"kind":"secret","id":"app/db","previous":"…","done":true}]`, check: func(v string) error {
		var x []json.RawMessage
		if err := json.Unmarshal([]byte(v), &x); err != nil {
			return fmt.Errorf("a JSON list")
		}
		return nil
	}}
	digestType = ValueType{Name: "a digest of large objects", Example: "count=1 bytes=307200 shape=3f2a… content=9b1c… writes=12 (as copy-large-objects records it)", check: func(v string) error {
		_, err := pg.ParseLargeObjectsDigest(v)
		return err
	}}
	textType = ValueType{Name: "one line of text", Example: "pg_trgm 1.6 -> 1.6", check: func(v string) error {
		if strings.ContainsAny(v, "\n\x00") {
			return fmt.Errorf("one line")
		}
		return nil
	}}

	hostname = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	awsID    = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,254}$`)
)

func matches(re, what string) func(string) error {
	r := regexp.MustCompile(re)
	return func(v string) error {
		if !r.MatchString(v) {
			return fmt.Errorf("%s", what)
		}
		return nil
	}
}

// valueTypes is every value key of the runbook and its type. A key ending
// in "." is a prefix: slot_lsn.<slot> takes slot_lsn.'s type.
var valueTypes = map[string]ValueType{
	"blue_version":                         versionType,
	"green_version":                        versionType,
	"replica_identity_full_tables":         tablesType,
	"slot_lsn":                             lsnType,
	"slot_lsn.":                            lsnType,
	"snapshot_copy.":                       lsnType,
	"clone_redo_done":                      lsnType,
	"green_redo_done":                      redoType,
	"green_start_lsn":                      lsnType,
	"green_endpoint":                       endpointType,
	"snapshot_id":                          awsIDType,
	"final_snapshot_id":                    awsIDType,
	"restore_time":                         timestampType,
	"extensions_upgraded":                  textType,
	"traffic_switched_at":                  timestampType,
	"decommission_confirmed":               textType,
	CutoverReportKey:                       fileType,
	CutoverDoneAtKey:                       timestampType,
	RollbackReportKey:                      fileType,
	RollbackDoneAtKey:                      timestampType,
	VerifyChecksumsKey:                     onOffType,
	MatviewsRefreshedKey:                   timestampType,
	LargeObjectsDigestKey:                  digestType,
	UnloggedCopiedKey:                      timestampType,
	SubscriptionErrorsKey:                  textType,
	trafficRecordKey(trafficToPgBouncerID): changesType,
	trafficRecordKey(switchTrafficID):      changesType,
	trafficRecordKey(readersToGreenID):     changesType,
}

// ValueTypeOf returns the type of a value key.
func ValueTypeOf(key string) (ValueType, bool) {
	if k, _, ok := strings.Cut(key, "@"); ok {
		key = k // a database's own value (key@database)
	}
	if t, ok := valueTypes[key]; ok && !strings.HasSuffix(key, ".") {
		return t, true
	}
	if i := strings.IndexByte(key, '.'); i > 0 {
		if t, ok := valueTypes[key[:i+1]]; ok && len(key) > i+1 {
			return t, true
		}
	}
	return ValueType{}, false
}

// ValueKeys lists the value keys, sorted (prefix keys as slot_lsn.<slot>).
func ValueKeys() []string {
	out := make([]string, 0, len(valueTypes))
	for k := range valueTypes {
		if strings.HasSuffix(k, ".") {
			k += "<slot>"
		}
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ValidateValue checks a value an operator typed for key: one line saying
// what is wrong, naming the key, the type expected and an example.
func ValidateValue(key, value string) error {
	t, ok := ValueTypeOf(key)
	if !ok {
		return fmt.Errorf("value %s: no step needs or records it; the values are %s", key, strings.Join(ValueKeys(), ", "))
	}
	if err := t.Validate(value); err != nil {
		return fmt.Errorf("value %s: %w", key, err)
	}
	return nil
}

// SetValue records a value typed by the operator, after ValidateValue, and
// journals the edit with its reason and the value it replaces. A value
// is refused without a reason; secrets are never values.
func (r *Runner) SetValue(key, value, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return &RefusedError{Step: "value " + key, Reason: "an edit needs a reason (--reason TEXT); it is journaled"}
	}
	if err := ValidateValue(key, value); err != nil {
		return &RefusedError{Step: "value " + key, Reason: err.Error()}
	}
	old, had := r.Store.Snapshot().Get(key)
	if err := r.Store.Update(func(st *state.State) error {
		st.Set(key, value, "operator")
		return nil
	}); err != nil {
		return fmt.Errorf("record value %s: %w", key, err)
	}
	was := "unset"
	if had {
		was = old
	}
	r.journal(state.Entry{Target: "operator", Kind: "operator", Text: fmt.Sprintf("value set %s = %s (was %s): %s", key, value, was, reason), Outcome: "value"})
	return nil
}
