package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// createdEntries are what Up (and Load) create in DIR; Down --purge removes
// these and nothing else.
var createdEntries = []string{"blue", "green", "green-clone", "run", "logs", "pgbouncer", "pgbouncer-ssh", "ssh",
	InfoFile, ConfigFile, "pgpass", LedgerFile, LedgerFile + "-*",
	// The clone strategy's working folders beside green-clone (pg.CloneParams.Paths).
	"green-clone.pgbluegreen", "green-clone.basebackup", "green-clone.basebackup.partial", "green-clone.upgrading",
	// A run on the lab keeps its state, lock, journal and reports in DIR by
	// default: a purged lab must not leave a run that says its steps are done.
	"pgbluegreen.state.json", "pgbluegreen.state.json.lock", "pgbluegreen.state.journal.jsonl",
	// The journal's attachments (a dump's text), the cutover guard's log and
	// heartbeat, the test hook's marker.
	"pgbluegreen.state.journal.files", "pgbluegreen.guard.log", "pgbluegreen.state.json.heartbeat", "pgbluegreen.held",
	"cutover-*.json", "cutover-*.md", "rollback-*.json", "rollback-*.md"}

// Down stops PgBouncer and every PostgreSQL server with a data directory in
// DIR (blue, green, a clone, anything else started there), and with purge
// removes what the lab created in DIR.
func Down(ctx context.Context, dir string, purge bool, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolving the lab folder: %w", err)
	}
	var errs []error
	if info, err := ReadInfo(dir); err == nil {
		for _, b := range info.Bouncers() {
			if pid := bouncerPID(b); pid != 0 {
				if err := stopBouncer(ctx, b); err != nil {
					errs = append(errs, err)
				} else {
					fmt.Fprintf(log, "PgBouncer %s stopped (pid %d)\n", b.Name, pid)
				}
			}
		}
		if pid := sshdPID(&info.SSHD); info.SSHD.PidFile != "" && pid != 0 {
			if err := stopSSHD(ctx, &info.SSHD); err != nil {
				errs = append(errs, err)
			} else {
				fmt.Fprintf(log, "sshd stopped (pid %d)\n", pid)
			}
		}
	} else if !purge {
		return err
	}
	for _, datadir := range dataDirs(dir) {
		pid := ServerPID(datadir)
		if pid == 0 {
			continue
		}
		if err := StopServer(ctx, datadir); err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(log, "%s stopped (pid %d)\n", filepath.Base(datadir), pid)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if purge {
		for _, e := range createdEntries {
			matches, _ := filepath.Glob(filepath.Join(dir, e)) // the patterns are fixed and valid
			for _, m := range matches {
				if err := os.RemoveAll(m); err != nil {
					return fmt.Errorf("removing %s: %w", m, err)
				}
			}
		}
		fmt.Fprintf(log, "removed the lab's files from %s\n", dir)
	}
	return nil
}

// dataDirs lists DIR's subfolders that hold a PostgreSQL data directory.
func dataDirs(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "*", "PG_VERSION"))
	out := make([]string, 0, len(m))
	for _, p := range m {
		out = append(out, filepath.Dir(p))
	}
	sort.Strings(out)
	return out
}

// ComponentStatus is one running (or not) part of the lab.
type ComponentStatus struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Port    int    `json:"port"`
	Version string `json:"version,omitempty"`
	BinDir  string `json:"bindir,omitempty"`
	Where   string `json:"where"`
	Target  string `json:"target,omitempty"` // PgBouncer: where database app points
	// Databases are a server's databases (asked live; templates and
	// postgres aside), or a PgBouncer's lab databases and where each points.
	Databases []DatabaseStatus `json:"databases,omitempty"`
}

// DatabaseStatus is one database a server holds or a PgBouncer serves.
type DatabaseStatus struct {
	Name   string `json:"name"`
	Target string `json:"target,omitempty"` // PgBouncer: its ini's line for it
}

// Status reports what of the lab in DIR runs, where, which versions and
// databases (asked live from running servers).
func Status(ctx context.Context, dir string) ([]ComponentStatus, error) {
	info, err := ReadInfo(dir)
	if err != nil {
		return nil, err
	}
	var out []ComponentStatus
	add := func(name string, srv Server) {
		c := ComponentStatus{Name: name, Port: srv.Port, Version: srv.Version, BinDir: srv.BinDir, Where: srv.DataDir}
		if pid := ServerPID(srv.DataDir); pid != 0 {
			c.Running, c.PID = true, pid
			if v := serverVersion(ctx, srv.Conninfo); v != "" {
				c.Version = v
			}
			for _, db := range serverDatabases(ctx, srv.Conninfo) {
				c.Databases = append(c.Databases, DatabaseStatus{Name: db})
			}
		}
		out = append(out, c)
	}
	add("blue", info.Blue)
	add("green", info.Green)
	if _, err := os.Stat(filepath.Join(info.Clone.DataDir, "PG_VERSION")); err == nil {
		add("green-clone", Server{Port: info.Clone.Port, DataDir: info.Clone.DataDir, Conninfo: info.Clone.Conninfo})
	}
	for k, pb := range info.Bouncers() {
		name := "pgbouncer"
		if k > 0 {
			name = "pgbouncer " + pb.Name
		}
		b := ComponentStatus{Name: name, Port: pb.Port, Where: pb.Ini}
		if pid := bouncerPID(pb); pid != 0 {
			b.Running, b.PID = true, pid
		}
		if target, err := bouncerTargetLine(pb.Ini, AppDB); err == nil {
			b.Target = target
		}
		for _, db := range info.Databases {
			if target, err := bouncerTargetLine(pb.Ini, db); err == nil {
				b.Databases = append(b.Databases, DatabaseStatus{Name: db, Target: target})
			}
		}
		out = append(out, b)
	}
	if info.SSHD.Port > 0 {
		s := ComponentStatus{Name: "sshd", Port: info.SSHD.Port, Where: info.SSHD.Config}
		if pid := sshdPID(&info.SSHD); pid != 0 {
			s.Running, s.PID = true, pid
		}
		out = append(out, s)
	}
	return out, nil
}
