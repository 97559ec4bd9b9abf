package pg

import "fmt"

// PlanLine is one line of a plan: a statement, a command, a file change or
// a note, with where it runs.
type PlanLine struct {
	On   string `json:"on"`
	Kind string `json:"kind"` // sql, command, file, note
	Text string `json:"text"`
}

func Lines(ss ...Stmt) []PlanLine {
	out := make([]PlanLine, len(ss))
	for i, s := range ss {
		out[i] = PlanLine{On: s.On, Kind: "sql", Text: s.Display()}
	}
	return out
}

func Note(on, format string, args ...any) PlanLine {
	return PlanLine{On: on, Kind: "note", Text: fmt.Sprintf(format, args...)}
}

// With returns the statement With a note for plans.
func (s Stmt) With(note string) Stmt { s.Note = note; return s }
