package steps

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pgbluegreen/pgbluegreen/state"
	"github.com/pgbluegreen/pgbluegreen/steps/config"
)

// PlanParams are the inputs of a rendered plan.
type PlanParams struct {
	Config *config.Config
	State  *state.State // may be nil: every step pending, no values
	Format string       // "text" or "markdown"
}

// WritePlan renders the whole runbook of the configured strategy, with the
// values known so far and placeholders for the rest. It needs no server.
func WritePlan(w io.Writer, p PlanParams) error {
	st := p.State
	if st == nil {
		st = &state.State{}
	}
	values := map[string]string{}
	for k, v := range st.Values {
		values[k] = v.Value
	}
	env := &Env{Config: p.Config, Values: values}
	list := Strategy(p.Config.Strategy)
	switch p.Format {
	case "", "text":
		return writeText(w, p.Config, st, env, list)
	case "markdown", "md":
		return writeMarkdown(w, p.Config, st, env, list)
	default:
		return fmt.Errorf("plan: --format %q is not one of text, markdown", p.Format)
	}
}

func writeText(w io.Writer, c *config.Config, st *state.State, env *Env, list []*Step) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pgbluegreen plan: strategy %s, cutover %s\n", c.Strategy, c.Cutover.Method)
	fmt.Fprintf(&b, "blue:  %s\ngreen: %s\n", config.Endpoint(c.Blue.Conninfo), config.Endpoint(c.Green.Conninfo))
	phase := Phase("")
	for i, s := range list {
		if s.Phase != phase {
			phase = s.Phase
			fmt.Fprintf(&b, "\n== %s ==\n", phase)
		}
		rec := st.Step(s.ID)
		flags := ""
		if s.Destructive {
			flags += " [destructive]"
		}
		if s.Optional {
			flags += " [optional]"
		}
		fmt.Fprintf(&b, "\n%2d. %s: %s (%s)%s  %s\n", i+1, s.ID, s.Title, s.Target, flags, rec.Status)
		fmt.Fprintf(&b, "    why: %s\n", s.Why)
		if len(s.Needs) > 0 {
			fmt.Fprintf(&b, "    needs: %s\n", strings.Join(s.Needs, ", "))
		}
		if len(s.Records) > 0 {
			fmt.Fprintf(&b, "    records: %s\n", strings.Join(s.Records, ", "))
		}
		for _, a := range s.OfflinePlan(env) {
			prefix := fmt.Sprintf("    %s %s> ", a.Target, a.Kind)
			fmt.Fprintf(&b, "%s%s\n", prefix, strings.ReplaceAll(a.Text, "\n", "\n"+strings.Repeat(" ", len(prefix))))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeMarkdown(w io.Writer, c *config.Config, st *state.State, env *Env, list []*Step) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# PostgreSQL upgrade runbook: strategy `%s`, cutover `%s`\n\n", c.Strategy, c.Cutover.Method)
	fmt.Fprintf(&b, "- blue: `%s`\n- green: `%s`\n\n", config.Endpoint(c.Blue.Conninfo), config.Endpoint(c.Green.Conninfo))
	b.WriteString("## Values\n\n| value | recorded | by | when |\n|---|---|---|---|\n")
	for _, k := range valueKeys(list, st) {
		v, ok := st.Values[k]
		if !ok {
			fmt.Fprintf(&b, "| %s | _pending_ | | |\n", k)
			continue
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", k, mdCell(v.Value), v.RecordedBy, v.RecordedAt.Format("2006-01-02 15:04:05Z07:00"))
	}
	phase := Phase("")
	for i, s := range list {
		if s.Phase != phase {
			phase = s.Phase
			fmt.Fprintf(&b, "\n## %s\n", phase)
		}
		rec := st.Step(s.ID)
		box := " "
		if rec.Status == state.Done || rec.Status == state.Skipped {
			box = "x"
		}
		fmt.Fprintf(&b, "\n### %d. `%s`: %s\n\n", i+1, s.ID, s.Title)
		fmt.Fprintf(&b, "- [%s] status: %s; target: %s; source: %s", box, rec.Status, s.Target, s.Source)
		if s.Destructive {
			b.WriteString("; **destructive** (confirmation required)")
		}
		if s.Optional {
			b.WriteString("; optional")
		}
		fmt.Fprintf(&b, "\n\n%s\n", s.Why)
		for _, a := range s.OfflinePlan(env) {
			switch a.Kind {
			case "sql":
				fmt.Fprintf(&b, "\n```sql\n-- on %s\n%s\n```\n", a.Target, a.Text)
			case "note":
				fmt.Fprintf(&b, "\n> %s\n", a.Text)
			default:
				fmt.Fprintf(&b, "\n- %s (%s): `%s`\n", a.Kind, a.Target, a.Text)
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// valueKeys lists the values the strategy records, then any others, sorted.
func valueKeys(list []*Step, st *state.State) []string {
	seen := map[string]bool{}
	var keys []string
	for _, s := range list {
		for _, k := range s.Records {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	var extra []string
	for k := range st.Values {
		if !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return append(keys, extra...)
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }
