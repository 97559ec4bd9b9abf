package aws

import (
	"strconv"
	"strings"
)

// PlannedCall is one API call an operation makes, with its parameters in a
// readable order: what a step's plan and --dry-run show. Every call of this
// package, read or write, is built by its Params' Plan() and the same value
// is journaled when the call is made, so plan, dry run and journal cannot
// drift apart.
type PlannedCall struct {
	// Call is the service and operation, e.g. "rds CreateDBSnapshot".
	Call   string
	Params []Param
}

// Param is one parameter of a PlannedCall.
type Param struct {
	Key, Value string
	// Secret values are shown as "(secret)": in plans and in the journal.
	Secret bool
}

// String renders the call on one line: `rds CreateDBSnapshot
// DBInstanceIdentifier=blue DBSnapshotIdentifier=green-snap`. It is both the
// plan's line and the journal's text.
func (c PlannedCall) String() string {
	var b strings.Builder
	b.WriteString(c.Call)
	for _, p := range c.Params {
		v := p.Value
		if p.Secret {
			v = "(secret)"
		}
		b.WriteString(" " + p.Key + "=" + v)
	}
	return b.String()
}

// Get returns a parameter's value as sent ("" if absent).
func (c PlannedCall) Get(key string) string {
	for _, p := range c.Params {
		if p.Key == key {
			return p.Value
		}
	}
	return ""
}

func call(name string, kv ...string) PlannedCall {
	c := PlannedCall{Call: name}
	for i := 0; i+1 < len(kv); i += 2 {
		c.add(kv[i], kv[i+1])
	}
	return c
}

func (c *PlannedCall) add(key, value string) {
	c.Params = append(c.Params, Param{Key: key, Value: value})
}

// addIf adds a parameter only when it has a value (optional parameters).
func (c *PlannedCall) addIf(key, value string) {
	if value != "" {
		c.add(key, value)
	}
}

func (c *PlannedCall) addSecret(key, value string) {
	c.Params = append(c.Params, Param{Key: key, Value: value, Secret: true})
}

func one(c PlannedCall) []PlannedCall { return []PlannedCall{c} }

func boolText(b bool) string { return strconv.FormatBool(b) }

// or returns a unless it is empty, else b.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
