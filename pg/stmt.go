package pg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Stmt is one statement an operation executes, built once: a step's plan
// and its dry run show it, and the journal records it as it runs. An
// operation (a ...Params value) returns its statements from one method and
// executes exactly those from another, so what the operator reviews is
// what runs.
type Stmt struct {
	// On is where the statement runs: "blue", "green", or "pgbouncer NAME"
	// for a PgBouncer's admin console.
	On string
	// SQL is the statement's text, with $1, $2... for Args.
	SQL string
	// Args are the bind parameters. A Secret is sent but shown as
	// '********'; a Later stands for a value known only mid-run (the drain
	// LSN): a plan shows where it comes from, and it is never executed.
	Args []any
	// Note is a short comment a plan shows after the statement (how often
	// it repeats, what happens on failure). The journal leaves it out.
	Note string
}

// Secret is a bind parameter whose value is sent to the server and never
// shown: plans, dry runs and the journal render it as '********'.
type Secret string

// Later is a bind parameter whose value is only known while the operation
// runs (the drain LSN, a sequence's value inside the pause). A plan renders
// it as <what it says>; the operation replaces it before executing.
type Later string

// noStatementLogStmts turn the server's statement logging off for the rest
// of a transaction: a Secret bound to a later statement of it (a password
// verifier, a connection string) never reaches the server's log, not even
// with an error.
func noStatementLogStmts(on string) []Stmt {
	return []Stmt{
		{On: on, SQL: "SET LOCAL log_statement = 'none'"},
		{On: on, SQL: "SET LOCAL log_min_duration_statement = -1"},
		{On: on, SQL: "SET LOCAL log_parameter_max_length_on_error = 0"},
	}
}

// eachStmt builds one statement per item with build: the Statements of
// an operation that does the same to each of a list (CreateSlotsParams,
// EnableParams...).
func eachStmt[T any](on string, items []T, build func(on string, item T) Stmt) []Stmt {
	out := make([]Stmt, len(items))
	for i, x := range items {
		out[i] = build(on, x)
	}
	return out
}

// Placeholder is a part of a statement's text that a plan made offline
// cannot know (the tables found on blue): it renders as <what it says>.
func Placeholder(what string) string { return "<" + what + ">" }

// param matches a bind parameter reference in a statement's text.
var param = regexp.MustCompile(`\$[0-9]+`)

// String renders the statement with its arguments in place of $n, as
// literals: what the plan shows and the journal records.
func (s Stmt) String() string {
	if len(s.Args) == 0 {
		return s.SQL
	}
	return param.ReplaceAllStringFunc(s.SQL, func(ref string) string {
		n, err := strconv.Atoi(ref[1:])
		if err != nil || n < 1 || n > len(s.Args) {
			return ref
		}
		return Literal(s.Args[n-1])
	})
}

// Display is String with the statement's note, for plans.
func (s Stmt) Display() string {
	if s.Note == "" {
		return s.String()
	}
	return s.String() + "  -- " + s.Note
}

// Literal renders a bind parameter as SQL would read it: strings quoted,
// arrays as ARRAY[...], a Secret as '********', a Later as <what>.
func Literal(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case Secret:
		return "'********'"
	case Later:
		return "<" + string(x) + ">"
	case string:
		return QuoteLiteral(x)
	case LSN:
		return QuoteLiteral(x.String())
	case bool:
		return strconv.FormatBool(x)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x)
	case time.Time:
		return QuoteLiteral(x.UTC().Format(time.RFC3339Nano))
	case []string:
		if len(x) == 0 {
			return "'{}'"
		}
		q := make([]string, len(x))
		for i, s := range x {
			q[i] = QuoteLiteral(s)
		}
		return "ARRAY[" + strings.Join(q, ", ") + "]"
	case []int32:
		return numArray(x)
	case []int64:
		return numArray(x)
	case []uint32:
		return numArray(x)
	case []bool:
		return numArray(x)
	case fmt.Stringer:
		return QuoteLiteral(x.String())
	default:
		return QuoteLiteral(fmt.Sprint(x))
	}
}

func numArray[T any](xs []T) string {
	if len(xs) == 0 {
		return "'{}'"
	}
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprint(x)
	}
	return "ARRAY[" + strings.Join(q, ", ") + "]"
}

// Executed is one statement or command as it ran, for the journal.
type Executed struct {
	// On is where it ran (Stmt.On, Command.On).
	On string
	// Kind is "sql" for a statement, "command" for a program.
	Kind string
	// Text is what ran, as its plan renders it (Stmt.String, Command.String).
	Text     string
	Duration time.Duration
	Err      error
}

type journalKey struct{}
type journaledKey struct{}

// WithJournal returns a context under which every statement an operation
// executes is reported to f once it ends (the runner journals it under the
// step its context names).
func WithJournal(ctx context.Context, f func(context.Context, Executed)) context.Context {
	return context.WithValue(ctx, journalKey{}, f)
}

// Journaled reports whether a statement traced under ctx is one an
// operation executes (and journals itself), so a query tracer can leave it
// out.
func Journaled(ctx context.Context) bool {
	_, ok := ctx.Value(journaledKey{}).(bool)
	return ok
}

// mutatingCalls are functions that change something although called from a
// SELECT (the large objects' writers among them: lo_open and lo_get read).
var mutatingCalls = regexp.MustCompile(`(?i)\b(pg_create_logical_replication_slot|pg_drop_replication_slot|pg_replication_origin_advance|pg_replication_slot_advance|pg_logical_emit_message|pg_terminate_backend|pg_cancel_backend|setval|nextval|set_config|pg_stat_reset\w*|lo_creat|lo_create|lo_from_bytea|lo_put|lo_unlink|lo_import|lo_export|lo_truncate\w*|lowrite)\s*\(`)

// IsRead reports whether a statement only reads: a SELECT, SHOW or WITH
// that calls no function that changes something. A query tracer journals
// reads as such; anything else run outside an operation is a statement no
// plan showed.
func IsRead(sql string) bool {
	f := strings.Fields(sql)
	if len(f) == 0 {
		return true
	}
	switch strings.ToUpper(f[0]) {
	case "SELECT", "SHOW", "WITH", "TABLE", "VALUES":
		return !mutatingCalls.MatchString(sql)
	}
	return false
}

// ErrLater is returned for a statement run with a Later argument left in it.
var ErrLater = errors.New("statement still holds a value known only at run time")

// bind returns the arguments as the driver takes them.
func (s Stmt) bind() ([]any, error) {
	if len(s.Args) == 0 {
		return nil, nil
	}
	out := make([]any, len(s.Args))
	for i, a := range s.Args {
		switch x := a.(type) {
		case Later:
			return nil, fmt.Errorf("%s ($%d is <%s>): %w", s.SQL, i+1, string(x), ErrLater)
		case Secret:
			out[i] = string(x)
		case LSN:
			out[i] = x.String()
		default:
			out[i] = a
		}
	}
	return out, nil
}

// report tells the context's journal of one statement.
// Ran journals s as run for this program by another process (the slot a
// snapshot's holder made), taking took.
func (s Stmt) Ran(ctx context.Context, took time.Duration, err error) {
	s.report(ctx, time.Now().Add(-took), err)
}

func (s Stmt) report(ctx context.Context, start time.Time, err error) {
	journalExecuted(ctx, Executed{On: s.On, Kind: "sql", Text: s.String(), Duration: time.Since(start), Err: err})
}

func journalExecuted(ctx context.Context, x Executed) {
	if IsQuiet(ctx) {
		return
	}
	if f, ok := ctx.Value(journalKey{}).(func(context.Context, Executed)); ok && f != nil {
		f(ctx, x)
	}
}

// Command is one program an operation runs (pg_dump, pg_basebackup,
// pg_upgrade, pg_ctl), shown by plans and journaled like a statement: its
// path and arguments. Its environment (PGPASSWORD) is never shown.
type Command struct {
	// On is the server it acts for: "blue", "green", or "local".
	On   string
	Path string
	Args []string
	// Note is a comment plans show after it.
	Note string
}

// String renders the command line, each word quoted for a POSIX shell
// when it needs it.
func (c Command) String() string {
	words := append([]string{c.Path}, c.Args...)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	return strings.Join(words, " ")
}

// Display is String with the command's note, for plans.
func (c Command) Display() string {
	if c.Note == "" {
		return c.String()
	}
	return c.String() + "  -- " + c.Note
}

// Journal reports a run of the command (its duration and error) to the
// context's journal; the operation that runs it calls this once it ends.
func (c Command) Journal(ctx context.Context, d time.Duration, err error) {
	journalExecuted(ctx, Executed{On: c.On, Kind: "command", Text: c.String(), Duration: d, Err: err})
}

// FileChange is a change an operation makes to a file (a PgBouncer ini's
// database entry), shown by plans and journaled like a statement.
type FileChange struct {
	// On is whose file it is: "pgbouncer NAME".
	On   string
	Path string
	// Text says what changes, e.g. `[databases] app = host=... port=... dbname=...`.
	Text string
}

// String renders the change for plans and the journal.
func (f FileChange) String() string { return "edit " + f.Path + ": " + f.Text }

// Journal reports the change (its duration and error) to the context's
// journal, as kind "file".
func (f FileChange) Journal(ctx context.Context, d time.Duration, err error) {
	journalExecuted(ctx, Executed{On: f.On, Kind: "file", Text: f.String(), Duration: d, Err: err})
}

type quietKey struct{}

// Quiet returns a context under which executed statements are not
// journaled: a poll repeated every millisecond inside the pause is
// journaled once, on its first run, and then runs quietly.
func Quiet(ctx context.Context) context.Context { return context.WithValue(ctx, quietKey{}, true) }

// IsQuiet reports whether ctx is Quiet: a query tracer leaves it out too.
func IsQuiet(ctx context.Context) bool { _, ok := ctx.Value(quietKey{}).(bool); return ok }

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./=:,@%+-]+$`)

func shellQuote(w string) string {
	if shellSafe.MatchString(w) || strings.HasPrefix(w, "<") && strings.HasSuffix(w, ">") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Execer runs a statement: a pool, one of its connections, a transaction.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// RowQuerier runs a statement that returns a row.
type RowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Exec runs the statement on x and journals it.
func (s Stmt) Exec(ctx context.Context, x Execer) error {
	args, err := s.bind()
	if err != nil {
		return err
	}
	start := time.Now()
	_, err = x.Exec(context.WithValue(ctx, journaledKey{}, true), s.SQL, args...)
	s.report(ctx, start, err)
	return err
}

// QueryRow runs the statement on q, scans its one row into dest and
// journals it (pg_create_logical_replication_slot returns the slot's LSN).
func (s Stmt) QueryRow(ctx context.Context, q RowQuerier, dest ...any) error {
	args, err := s.bind()
	if err != nil {
		return err
	}
	start := time.Now()
	err = q.QueryRow(context.WithValue(ctx, journaledKey{}, true), s.SQL, args...).Scan(dest...)
	s.report(ctx, start, err)
	return err
}

// ExecAll runs statements in order on x, stopping at the first error,
// which names the statement.
func ExecAll(ctx context.Context, x Execer, stmts []Stmt) error {
	for _, s := range stmts {
		if err := s.Exec(ctx, x); err != nil {
			return fmt.Errorf("%s: %w", s.String(), err)
		}
	}
	return nil
}

// InTx wraps statements in BEGIN and COMMIT, for plans: ExecTx runs them so.
func InTx(on string, stmts []Stmt) []Stmt {
	out := make([]Stmt, 0, len(stmts)+2)
	out = append(out, Stmt{On: on, SQL: "BEGIN"})
	out = append(out, stmts...)
	return append(out, Stmt{On: on, SQL: "COMMIT"})
}

// ExecTx runs statements (the output of InTx: BEGIN first, COMMIT last) in
// one transaction on a connection of pool's, journaling each; a failure
// rolls back, also when ctx was cancelled.
func ExecTx(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, stmts []Stmt) error {
	if len(stmts) < 2 || stmts[0].SQL != "BEGIN" || stmts[len(stmts)-1].SQL != "COMMIT" {
		return fmt.Errorf("ExecTx needs BEGIN ... COMMIT (InTx)")
	}
	quiet := context.WithValue(ctx, journaledKey{}, true)
	start := time.Now()
	tx, err := db.Begin(quiet)
	stmts[0].report(ctx, start, err)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(quiet)) // a no-op after COMMIT
	if err := ExecAll(ctx, tx, stmts[1:len(stmts)-1]); err != nil {
		return err
	}
	start = time.Now()
	err = tx.Commit(quiet)
	stmts[len(stmts)-1].report(ctx, start, err)
	return err
}
