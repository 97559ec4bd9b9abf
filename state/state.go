package state

import (
	"encoding/json"
	"maps"
	"slices"
	"sort"
	"time"
)

// SchemaVersion is the version of the state file's layout this package reads and writes. A file
// with another version is refused rather than guessed at.
const SchemaVersion = 1

// Status is where a step stands.
type Status string

// The statuses a step can have.
const (
	// Pending: never started, or reset by the operator.
	Pending Status = "pending"
	// Running: started and not finished. Only ever seen on disk while a runner is alive, or
	// after a crash (then Open turns it into Interrupted).
	Running Status = "running"
	// Done: its run finished, or its check found the work already done.
	Done Status = "done"
	// Failed: its run or check returned an error (LastError says which).
	Failed Status = "failed"
	// Skipped: not needed for this run (another strategy's step, or skipped by the operator).
	Skipped Status = "skipped"
	// Interrupted: the process ended while the step was running; only its check can tell
	// whether it completed.
	Interrupted Status = "interrupted"
)

// InterruptedReason is the LastError given to a step that was found Running when the state file
// was opened for writing.
const InterruptedReason = "process ended while the step was running; its check decides whether it completed"

// Value is one entry of the run's values table.
type Value struct {
	Key        string    `json:"key"`
	Value      string    `json:"value"`
	RecordedBy string    `json:"recorded_by"` // step ID, or "operator"
	RecordedAt time.Time `json:"recorded_at"`
}

// StepRecord is the persisted status of one step.
type StepRecord struct {
	ID         string     `json:"id"`
	Status     Status     `json:"status"`
	Attempts   int        `json:"attempts"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	Result     string     `json:"result,omitempty"`
	// Database says, while a step that acts in each database runs, which
	// one it is in and how far it is: "billing (2 of 3)".
	Database string `json:"database,omitempty"`
}

// State is the whole state file.
type State struct {
	SchemaVersion int                    `json:"schema_version"`
	Strategy      string                 `json:"strategy"`
	CreatedAt     time.Time              `json:"created_at"`
	UpdatedAt     time.Time              `json:"updated_at"`
	Values        map[string]Value       `json:"values"`
	Steps         map[string]*StepRecord `json:"steps"`
	// Attempts are the cutovers and rollbacks tried, and the ways out of
	// interrupted ones, oldest first.
	Attempts []Attempt `json:"attempts,omitempty"`
}

// The outcomes of an attempt.
const (
	AttemptRunning     = "running"
	AttemptDone        = "done"        // writes go to its target
	AttemptAborted     = "aborted"     // stopped before the switch, put back (or undone)
	AttemptRefused     = "refused"     // a precheck failed, nothing changed
	AttemptFailed      = "failed"      // stopped, and putting back failed: a way out is needed
	AttemptInterrupted = "interrupted" // its process ended while it ran
)

// Attempt is one cutover or rollback attempt, or one way out of an
// interrupted one.
type Attempt struct {
	N    int    `json:"n"`
	Step string `json:"step"` // "cutover" or "rollback"
	// Way is "" for an attempt, "finish" or "undo" for a way out.
	Way        string     `json:"way,omitempty"`
	Method     string     `json:"method"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Outcome    string     `json:"outcome"`
	Error      string     `json:"error,omitempty"`
	// Report is the path of its report (JSON; Markdown beside it).
	Report string `json:"report,omitempty"`
	// What the attempt found before it changed anything, for its ways out:
	// each PgBouncer's server_login_retry, whether the target was read-only,
	// and the roles it fences.
	LoginRetry     map[string]string `json:"login_retry,omitempty"`
	TargetReadOnly bool              `json:"target_read_only,omitempty"`
	FenceRoles     []string          `json:"fence_roles,omitempty"`
	// Prior is all the attempt found before it changed anything, as the
	// cutover engine reads it back (its PgBouncer entries, the fences in
	// force, the roles without LOGIN on the target): opaque here.
	Prior json.RawMessage `json:"prior,omitempty"`
	// Fences are the fences in force when it ended, what each side's fence
	// took, for the next attempt to give back: opaque here.
	Fences json.RawMessage `json:"fences,omitempty"`
	// DriverPID is the process that ran it; Guard says what its guard did.
	DriverPID int    `json:"driver_pid,omitempty"`
	Guard     string `json:"guard,omitempty"`
}

// LastAttempt returns the newest attempt of step ("" for any), and whether
// there is one.
func (s *State) LastAttempt(step string) (Attempt, bool) {
	if s == nil {
		return Attempt{}, false
	}
	for k := len(s.Attempts) - 1; k >= 0; k-- {
		if step == "" || s.Attempts[k].Step == step {
			return s.Attempts[k], true
		}
	}
	return Attempt{}, false
}

// newState is the state of a run that has not written anything yet.
func newState(now time.Time) *State {
	return &State{
		SchemaVersion: SchemaVersion,
		CreatedAt:     now,
		UpdatedAt:     now,
		Values:        map[string]Value{},
		Steps:         map[string]*StepRecord{},
	}
}

// Clone returns a deep copy: nothing in it is shared with s, so it can be handed to another
// goroutine (the UI) while s keeps changing.
func (s *State) Clone() *State {
	if s == nil {
		return nil
	}
	c := *s
	c.Values = make(map[string]Value, len(s.Values))
	for k, v := range s.Values {
		c.Values[k] = v
	}
	c.Attempts = make([]Attempt, len(s.Attempts))
	for k, a := range s.Attempts {
		if a.FinishedAt != nil {
			t := *a.FinishedAt
			a.FinishedAt = &t
		}
		a.LoginRetry = maps.Clone(a.LoginRetry)
		a.FenceRoles = slices.Clone(a.FenceRoles)
		c.Attempts[k] = a
	}
	c.Steps = make(map[string]*StepRecord, len(s.Steps))
	for k, r := range s.Steps {
		if r == nil {
			continue
		}
		cr := r.clone()
		c.Steps[k] = &cr
	}
	return &c
}

// clone copies a record, including the times its pointers refer to.
func (r StepRecord) clone() StepRecord {
	if r.StartedAt != nil {
		t := *r.StartedAt
		r.StartedAt = &t
	}
	if r.FinishedAt != nil {
		t := *r.FinishedAt
		r.FinishedAt = &t
	}
	return r
}

// Step returns a copy of the record of step id, or a Pending record with that ID if the step has
// none yet. Changing the copy changes nothing: use EditStep inside Store.Update for that.
func (s *State) Step(id string) StepRecord {
	if s != nil {
		if r, ok := s.Steps[id]; ok && r != nil {
			return r.clone()
		}
	}
	return StepRecord{ID: id, Status: Pending}
}

// EditStep returns the record of step id for changing in place, creating a Pending one if the
// step has none. Meant for the function given to Store.Update.
func (s *State) EditStep(id string) *StepRecord {
	if s.Steps == nil {
		s.Steps = map[string]*StepRecord{}
	}
	r, ok := s.Steps[id]
	if !ok || r == nil {
		r = &StepRecord{ID: id, Status: Pending}
		s.Steps[id] = r
	}
	return r
}

// Get returns the value recorded under key, and whether there is one.
func (s *State) Get(key string) (string, bool) {
	if s == nil {
		return "", false
	}
	v, ok := s.Values[key]
	return v.Value, ok
}

// Set records value under key, saying who recorded it (a step ID or "operator") and when.
// Values are never secrets: Store.Update passes them through Redact before saving.
func (s *State) Set(key, value, recordedBy string) {
	if s.Values == nil {
		s.Values = map[string]Value{}
	}
	s.Values[key] = Value{Key: key, Value: value, RecordedBy: recordedBy, RecordedAt: time.Now().UTC()}
}

// ValueKeys returns the keys of the values table in sorted order, for stable display.
func (s *State) ValueKeys() []string {
	if s == nil {
		return nil
	}
	keys := make([]string, 0, len(s.Values))
	for k := range s.Values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// normalize repairs what a hand-edited or older file may lack, so the rest of the program can
// rely on non-nil maps and records whose ID matches their key.
func (s *State) normalize() {
	if s.Values == nil {
		s.Values = map[string]Value{}
	}
	if s.Steps == nil {
		s.Steps = map[string]*StepRecord{}
	}
	for k, v := range s.Values {
		if v.Key != k {
			v.Key = k
			s.Values[k] = v
		}
	}
	for k, r := range s.Steps {
		if r == nil {
			delete(s.Steps, k)
			continue
		}
		r.ID = k
		if r.Status == "" {
			r.Status = Pending
		}
	}
}

// redactSecrets passes every free-text field through Redact, so a password that slipped into a
// value, an error or a result never reaches the file.
func (s *State) redactSecrets() {
	for k, v := range s.Values {
		if r := Redact(v.Value); r != v.Value {
			v.Value = r
			s.Values[k] = v
		}
	}
	for _, r := range s.Steps {
		r.LastError = Redact(r.LastError)
		r.Result = Redact(r.Result)
	}
	for k := range s.Attempts {
		s.Attempts[k].Error = Redact(s.Attempts[k].Error)
		s.Attempts[k].Guard = Redact(s.Attempts[k].Guard)
	}
}

// markInterrupted turns every Running step into Interrupted, and every
// running attempt too, and reports whether any was.
func (s *State) markInterrupted() bool {
	changed := false
	for k := range s.Attempts {
		if s.Attempts[k].Outcome == AttemptRunning {
			s.Attempts[k].Outcome = AttemptInterrupted
			changed = true
		}
	}
	for _, r := range s.Steps {
		if r.Status == Running {
			r.Status = Interrupted
			r.LastError = InterruptedReason
			changed = true
		}
	}
	return changed
}
