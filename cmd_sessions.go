package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgbluegreen/pgbluegreen/steps/monitor"
)

// sessions prints who is connected to blue and green, grouped, with the
// sessions that matter to a cutover marked, and what each PgBouncer says.
// It only reads, through read-only sessions of its own.
var sessionsCommand = command{name: "sessions", synopsis: "sessions [--json]", run: runSessions}

func runSessions(c *call, args []string) int {
	fs := c.flags()
	asJSON := fs.Bool("json", false, "one JSON document on stdout")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	s, code := c.open(needs{pools: readPools})
	if s == nil {
		return code
	}
	defer s.close()
	ctx, cancel := signalContext()
	defer cancel()
	conns, _ := monitor.NewMonitor(s.blue, s.green, s.cfg).Connections(ctx)
	if *asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(conns); err != nil {
			return exitFailed
		}
	} else {
		writeSessions(c.stdout, conns)
	}
	for _, s := range conns.Servers {
		if s.Err != "" {
			return exitFailed
		}
	}
	return exitOK
}

// writeSessions writes Connections as text: per server its groups, then
// every marked session on its own line, then each PgBouncer.
func writeSessions(w io.Writer, c monitor.Connections) {
	fmt.Fprintf(w, "who is connected, read %s; a transaction open longer than %s is long (sessions.long_transaction: it would hold PgBouncer's PAUSE)\n",
		c.At.Local().Format("15:04:05"), c.LongAfter)
	for _, s := range c.Servers {
		fmt.Fprintf(w, "\n%s: %d session(s)", s.Name, len(s.Sessions))
		if s.Err != "" {
			fmt.Fprintf(w, "; unreadable: %s", s.Err)
		}
		fmt.Fprintln(w)
		if len(s.Groups) == 0 {
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  SESSIONS\tUSER\tAPPLICATION\tCLIENT\tVIA\tSTATES\tOLDEST TX\tWAITING ON\tMARKED")
		for _, g := range s.Groups {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Sessions, g.User, orDash(g.Application), g.Client,
				viaText(g.Via, g.Ours), g.StatesText(), ageText(g.OldestXact), orDash(strings.Join(g.WaitEvents, " ")), groupMarks(g))
		}
		tw.Flush()
		for _, x := range s.Sessions {
			if m := sessionMarks(x); m != "" {
				fmt.Fprintf(w, "  %s: pid %d %s@%s %s, %s for %s, transaction %s%s\n", m, x.PID, x.User, x.Client, orDash(x.Application),
					orDash(x.State), ageText(x.StateAge), ageText(x.XactAge), queryText(x.Query))
			}
		}
	}
	for _, b := range c.Bouncers {
		fmt.Fprintf(w, "\nPgBouncer %s", b.Name)
		if b.Err != "" {
			fmt.Fprintf(w, ": %s", b.Err)
		}
		fmt.Fprintln(w)
		for _, d := range b.Databases {
			if d.Name == "pgbouncer" {
				continue
			}
			paused := "not paused"
			if d.Paused {
				paused = "‖ PAUSED"
			}
			fmt.Fprintf(w, "  database %s -> %s:%d/%s, %s\n", d.Name, d.Host, d.Port, d.Database, paused)
		}
		for _, p := range b.Pools {
			if p.Database == "pgbouncer" {
				continue
			}
			fmt.Fprintf(w, "  pool %s/%s (%s): clients %d active, %d waiting; servers %d active, %d idle, %d used; max wait %s\n",
				p.Database, p.User, p.PoolMode, p.ClActive, p.ClWaiting, p.SvActive, p.SvIdle, p.SvUsed, ageText(p.MaxWait))
		}
	}
}

// sessionMarks are a session's marks in words, with a symbol each.
func sessionMarks(s monitor.SessionView) string {
	var m []string
	if s.Direct {
		m = append(m, "⚠ DIRECT (not through PgBouncer)")
	}
	if s.Long {
		m = append(m, "⚠ LONG TRANSACTION")
	}
	return strings.Join(m, " ")
}

func groupMarks(g monitor.SessionGroup) string {
	var m []string
	if g.Direct > 0 {
		m = append(m, fmt.Sprintf("⚠ %d direct", g.Direct))
	}
	if g.Long > 0 {
		m = append(m, fmt.Sprintf("⚠ %d long tx", g.Long))
	}
	return orDash(strings.Join(m, ", "))
}

func viaText(via string, ours bool) string {
	switch {
	case ours:
		return "pgbluegreen"
	case via != "":
		return "PgBouncer " + via
	}
	return "-"
}

func ageText(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func queryText(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if q == "" {
		return ""
	}
	return ": " + oneLine(q, 80)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
