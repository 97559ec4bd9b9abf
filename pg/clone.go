package pg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/state"
)

// The self-managed clone: the local twin of an Aurora clone + in-place
// upgrade. pg_basebackup of blue (taken after the slots exist), recovered
// with blue's binaries (the first `redo done at` of that start is the seed's
// evidence), cleaned of blue's publications and slots, stopped, then
// pg_upgrade --link with green's binaries, and started as green.
//
// Files, all next to DataDir so a crash at any point leaves a state the
// next run recognises:
//
//	DataDir.basebackup.partial  pg_basebackup writing (removed on retry)
//	DataDir.basebackup          the clone, blue's major (removed after the upgrade)
//	DataDir.upgrading           green's new cluster while pg_upgrade runs
//	DataDir                     green: renamed from .upgrading once upgraded and configured
//	DataDir.pgbluegreen/        recovery.log (the seed's evidence, written by the first
//	                            start only), clone.log, green.log, facts.json, run/ (sockets),
//	                            pg_upgrade/ (its working folder)

// CloneStartMarker is written to the recovery log just before the clone's
// first start; the seed is the first `redo done at` after it.
const CloneStartMarker = "pgbluegreen: clone recovery start"

// CloneParams configure Clone.
type CloneParams struct {
	// BlueConninfo is how pg_basebackup reaches blue: host, port and user
	// are passed as arguments, the password (from the string, PGPASSWORD or
	// the passfile, as pgx reads them) only through the environment.
	BlueConninfo string
	// GreenConninfo reaches DataDir's server on Port: the clone while it is
	// prepared, then green.
	GreenConninfo           string
	BlueBindir, GreenBindir string
	DataDir                 string
	Port                    int
	OSUser                  string
	// Log receives progress lines; nil = none.
	Log func(format string, args ...any)
	// StopAfter, when set, ends Clone once that phase is reached: a
	// rehearsal up to a point, and how tests interrupt it.
	StopAfter ClonePhase

	restarted bool // Clone started over once after a ruined upgrade
}

// discard removes a clone whose upgrade was interrupted mid-link, and its
// recovery log (its seed would be stale).
func (p CloneParams) discard() error {
	ps := p.Paths()
	for _, path := range []string{ps.Upgrading, ps.Basebackup, ps.Partial, ps.Facts, ps.RecoveryLog, ps.CloneLog} {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("discarding the interrupted clone: %w", err)
		}
	}
	return nil
}

// ClonePhase is how far a clone has come, read from the files it left.
type ClonePhase string

// The phases, in order.
const (
	CloneAbsent    ClonePhase = "absent"    // nothing made yet
	CloneBackedUp  ClonePhase = "backed up" // pg_basebackup done, never started
	CloneRecovered ClonePhase = "recovered" // started once: the recovery log holds the seed's evidence
	ClonePrepared  ClonePhase = "prepared"  // publications and slots dropped, facts saved, stopped
	CloneUpgrading ClonePhase = "upgrading" // pg_upgrade began and did not finish
	CloneUpgraded  ClonePhase = "upgraded"  // DataDir holds green's major
)

// ClonePaths are the files of one clone.
type ClonePaths struct {
	Basebackup, Partial, Upgrading, DataDir string
	Work, RecoveryLog, CloneLog, GreenLog   string
	Facts, SocketDir, UpgradeDir            string
}

// Paths returns where the clone keeps its files.
func (p CloneParams) Paths() ClonePaths {
	d := filepath.Clean(p.DataDir)
	w := d + ".pgbluegreen"
	return ClonePaths{
		Basebackup: d + ".basebackup", Partial: d + ".basebackup.partial", Upgrading: d + ".upgrading", DataDir: d,
		Work: w, RecoveryLog: filepath.Join(w, "recovery.log"), CloneLog: filepath.Join(w, "clone.log"),
		GreenLog: filepath.Join(w, "green.log"), Facts: filepath.Join(w, "facts.json"),
		SocketDir: filepath.Join(w, "run"), UpgradeDir: filepath.Join(w, "pg_upgrade"),
	}
}

// CloneFacts are read from the clone before it is stopped: what green's
// initdb must match for pg_upgrade, and blue's settings green keeps.
type CloneFacts struct {
	RedoDone       string      `json:"redo_done"`
	Superuser      string      `json:"superuser"`
	Encoding       string      `json:"encoding"`
	Collate        string      `json:"collate"`
	Ctype          string      `json:"ctype"`
	LocaleProvider string      `json:"locale_provider"` // "c", "i" (ICU) or "" before PG15
	ICULocale      string      `json:"icu_locale,omitempty"`
	DataChecksums  bool        `json:"data_checksums"`
	Settings       [][2]string `json:"settings"`
	Dropped        []string    `json:"dropped"`
}

// CloneResult is what one Clone call did.
type CloneResult struct {
	From, To                      ClonePhase
	RedoDone                      LSN
	Basebackup, Recovery, Upgrade time.Duration
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

func readMajor(datadir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(datadir, "PG_VERSION"))
	if err != nil {
		return 0, false
	}
	m, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return m, err == nil
}

// Phase reads how far the clone has come. greenMajor is the major of
// GreenBindir: a DataDir holding any other major was not made here.
func (p CloneParams) Phase(greenMajor int) (ClonePhase, error) {
	ps := p.Paths()
	if m, ok := readMajor(ps.DataDir); ok {
		if m != greenMajor {
			return "", fmt.Errorf("%s holds a PostgreSQL %d cluster, not one this step upgraded to %d: move it away, or set clone.data_dir to a new folder", ps.DataDir, m, greenMajor)
		}
		return CloneUpgraded, nil
	}
	if fileExists(ps.DataDir) {
		if entries, _ := os.ReadDir(ps.DataDir); len(entries) > 0 {
			return "", fmt.Errorf("%s exists and is not a PostgreSQL data directory: move it away, or set clone.data_dir to a new folder", ps.DataDir)
		}
	}
	if fileExists(ps.Upgrading) {
		return CloneUpgrading, nil
	}
	if _, ok := readMajor(ps.Basebackup); !ok {
		return CloneAbsent, nil
	}
	if fileExists(ps.Facts) {
		return ClonePrepared, nil
	}
	if _, err := p.RedoDone(); err == nil {
		return CloneRecovered, nil
	}
	return CloneBackedUp, nil
}

// RedoDone reads the seed's evidence: the first `redo done at` after the
// start marker in the clone's recovery log.
func (p CloneParams) RedoDone() (LSN, error) {
	path := p.Paths().RecoveryLog
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("the clone's recovery log %s: %w", path, err)
	}
	defer f.Close()
	lsn, err := FirstRedoDone(f, CloneStartMarker)
	if err != nil {
		return 0, fmt.Errorf("the clone's recovery log %s: %w", path, err)
	}
	return lsn, nil
}

// ReadCloneFacts reads what was saved from the clone before its upgrade.
func (p CloneParams) ReadCloneFacts() (CloneFacts, error) {
	var f CloneFacts
	b, err := os.ReadFile(p.Paths().Facts)
	if err != nil {
		return f, fmt.Errorf("reading the clone's facts: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("reading %s: %w", p.Paths().Facts, err)
	}
	return f, nil
}

func (p CloneParams) logf(format string, args ...any) {
	if p.Log != nil {
		p.Log(format, args...)
	}
}

// Clone makes green from blue, resuming from whatever phase it finds: it
// never takes a second base backup over a first one (unless pg_upgrade was
// cut mid-link, which ruins both clusters), and the recovery log is written
// by the clone's first start only. It returns when green runs on Port with
// green's binaries.
func Clone(ctx context.Context, p CloneParams) (res CloneResult, err error) {
	greenMajor, err := BinMajor(ctx, p.GreenBindir)
	if err != nil {
		return res, err
	}
	if _, err := BinMajor(ctx, p.BlueBindir); err != nil {
		return res, err
	}
	u, err := LookupOSUser(p.OSUser)
	if err != nil {
		return res, err
	}
	ps := p.Paths()
	phase, err := p.Phase(greenMajor)
	if err != nil {
		return res, err
	}
	res.From = phase
	defer func() {
		if lsn, err := p.RedoDone(); err == nil {
			res.RedoDone = lsn
		}
	}()
	for _, d := range []string{ps.Work, ps.SocketDir, ps.UpgradeDir} {
		if err := u.MkdirFor(d, 0o700); err != nil {
			return res, err
		}
	}
	if phase == CloneAbsent {
		start := time.Now()
		if err := p.basebackup(ctx, u); err != nil {
			return res, err
		}
		res.Basebackup = time.Since(start)
		p.logf("pg_basebackup done in %s", res.Basebackup.Round(time.Millisecond))
		phase = CloneBackedUp
	}
	if res.To = phase; p.StopAfter == phase {
		return res, nil
	}
	if phase == CloneBackedUp || phase == CloneRecovered {
		start := time.Now()
		if err := p.prepare(ctx, u, phase); err != nil {
			return res, err
		}
		res.Recovery = time.Since(start)
		phase = ClonePrepared
	}
	if res.To = phase; p.StopAfter == phase {
		return res, nil
	}
	if phase == ClonePrepared || phase == CloneUpgrading {
		start := time.Now()
		err := p.upgrade(ctx, u, greenMajor)
		if errors.Is(err, errLinkInterrupted) && !p.restarted {
			// Nothing has consumed the slots (green does not exist yet):
			// a new clone is as good as the first. Start over, once.
			p.logf("%v: neither can be used; discarding them and cloning blue again", err)
			if err := p.discard(); err != nil {
				return res, err
			}
			p.restarted = true
			again, err := Clone(ctx, p)
			again.From = res.From
			return again, err
		}
		if err != nil {
			return res, err
		}
		res.Upgrade = time.Since(start)
		p.logf("upgrade phase (initdb, pg_upgrade --link, configuration) done in %s", res.Upgrade.Round(time.Millisecond))
	}
	if err := pgCtlStart(ctx, u, p.GreenBindir, ps.DataDir, ps.GreenLog, ""); err != nil {
		return res, fmt.Errorf("starting green: %w", err)
	}
	res.To = CloneUpgraded
	return res, nil
}

// basebackup copies blue into .partial, then renames it: a half-made copy
// is never taken for a clone.
func (p CloneParams) basebackup(ctx context.Context, u OSUser) error {
	ps := p.Paths()
	c, env, err := p.basebackupCommand()
	if err != nil {
		return err
	}
	if err := os.RemoveAll(ps.Partial); err != nil {
		return fmt.Errorf("clearing an interrupted base backup: %w", err)
	}
	if err := u.MkdirFor(ps.Partial, 0o700); err != nil {
		return err
	}
	p.logf("%s", c.String())
	if err := runCommand(ctx, u, c, env, "", filepath.Join(ps.Work, "pg_basebackup.out")); err != nil {
		return fmt.Errorf("pg_basebackup of blue: %w", err)
	}
	if !fileExists(filepath.Join(ps.Partial, "pg_hba.conf")) {
		return fmt.Errorf("the base backup has no pg_hba.conf (blue keeps it outside its data directory): copy blue's pg_hba.conf into %s and run again", ps.Partial)
	}
	// A recovery log of an earlier clone would hold a stale seed: it goes
	// before the new clone takes its name.
	if err := os.Remove(ps.RecoveryLog); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing the previous clone's recovery log: %w", err)
	}
	for _, f := range []string{ps.Facts, ps.CloneLog} {
		_ = os.Remove(f)
	}
	if err := os.Rename(ps.Partial, ps.Basebackup); err != nil {
		return fmt.Errorf("naming the base backup: %w", err)
	}
	return nil
}

// cloneSettings are appended to the clone's postgresql.auto.conf (later
// lines win): its own port and sockets (it inherited blue's), and nothing
// that reaches outside: no WAL archiving into blue's archive, no waiting
// for blue's synchronous standbys, no apply workers of subscriptions blue
// may have.
func (p CloneParams) cloneSettings() string {
	ps := p.Paths()
	return fmt.Sprintf("\n# pgbluegreen clone\nport = %d\nunix_socket_directories = '%s'\narchive_mode = off\nsynchronous_standby_names = ''\nmax_logical_replication_workers = 0\n",
		p.Port, confQuote(ps.SocketDir))
}

func confQuote(s string) string { return strings.ReplaceAll(s, "'", "''") }

// prepare starts the clone with blue's binaries (first start: into the
// recovery log, after the marker), checks the seed's evidence is there,
// drops blue's publications and logical slots from every database, saves
// the facts the upgrade needs, and stops it.
func (p CloneParams) prepare(ctx context.Context, u OSUser, phase ClonePhase) error {
	ps := p.Paths()
	auto := filepath.Join(ps.Basebackup, "postgresql.auto.conf")
	b, _ := os.ReadFile(auto)
	if !strings.Contains(string(b), "# pgbluegreen clone") {
		if err := appendConf(u, auto, p.cloneSettings()); err != nil {
			return fmt.Errorf("setting the clone's port: %w", err)
		}
	}
	logPath := ps.CloneLog
	if phase == CloneBackedUp {
		// The first start: its log is the seed's evidence. pg_ctl -l
		// appends, so the marker separates this start from anything before.
		logPath = ps.RecoveryLog
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("preparing the recovery log: %w", err)
		}
		_, err = fmt.Fprintf(f, "%s %s\n", CloneStartMarker, time.Now().UTC().Format(time.RFC3339Nano))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("preparing the recovery log: %w", err)
		}
	}
	p.logf("starting the clone with blue's binaries on port %d (log %s)", p.Port, logPath)
	// English messages and the log on stderr (into -l): the seed is read
	// from the `redo done at` line.
	if err := pgCtlStart(ctx, u, p.BlueBindir, ps.Basebackup, logPath, cloneStartOptions); err != nil {
		return fmt.Errorf("starting the clone: %w", err)
	}
	redo, err := p.RedoDone()
	if err != nil {
		_ = pgCtlStop(ctx, u, p.BlueBindir, ps.Basebackup, filepath.Join(ps.Work, "pg_ctl_stop.out"))
		return fmt.Errorf("the clone started but its recovery end was not found (%w): drop the clone (%s, %s) and run clone-local again", err, ps.Basebackup, ps.Work)
	}
	p.logf("clone recovered: redo done at %s", redo)
	facts, err := p.cleanClone(ctx)
	if err != nil {
		return err
	}
	facts.RedoDone = redo.String()
	if err := pgCtlStop(ctx, u, p.BlueBindir, ps.Basebackup, filepath.Join(ps.Work, "pg_ctl_stop.out")); err != nil {
		return err
	}
	data, _ := json.MarshalIndent(facts, "", "  ")
	if err := state.WriteFileAtomic(ps.Facts, data, 0o644); err != nil {
		return fmt.Errorf("saving the clone's facts: %w", err)
	}
	return nil
}
