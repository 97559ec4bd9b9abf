package pg

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// The programs the clone runs, built once: clone-local's plan shows them
// and Clone runs them, each journaled as it ends (kind "command"), with its
// output in a file of the clone's work folder.

// CloneAction is one thing Clone does, as its plan shows it: a program, a
// statement on the clone, or a note (a file it writes, a folder it renames).
type CloneAction struct {
	Command *Command
	Stmt    *Stmt
	Note    string
}

func cmdAction(c Command) CloneAction { return CloneAction{Command: &c} }

// basebackupCommand is pg_basebackup of blue into the .partial folder:
// host, port and user as arguments, the password in env only.
func (p CloneParams) basebackupCommand() (Command, []string, error) {
	pc, err := pgconn.ParseConfig(p.BlueConninfo)
	if err != nil {
		return Command{}, nil, fmt.Errorf("reading blue's connection string: %w", err)
	}
	c := Command{On: "green", Path: filepath.Join(p.BlueBindir, "pg_basebackup"),
		Args: []string{"-h", pc.Host, "-p", strconv.Itoa(int(pc.Port)), "-U", pc.User, "-w", "-D", p.Paths().Partial, "-X", "stream", "-c", "fast"},
		Note: "the password, if any, in PGPASSWORD only; then renamed " + filepath.Base(p.Paths().Basebackup)}
	var env []string
	// The password travels in the environment only: never in argv, where
	// every user of the machine can read it.
	if pc.Password != "" {
		env = append(env, "PGPASSWORD="+pc.Password)
	}
	if pc.TLSConfig == nil {
		env = append(env, "PGSSLMODE=disable")
	}
	return c, env, nil
}

// pgCtlStartCommand starts the server of datadir and waits until it accepts
// connections (an hour at most: recovery of a large clone takes time).
func pgCtlStartCommand(bindir, datadir, logPath, opts string) Command {
	args := []string{"start", "-w", "-t", "3600", "-D", datadir, "-l", logPath}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	return Command{On: "green", Path: filepath.Join(bindir, "pg_ctl"), Args: args}
}

// pgCtlStopCommand stops the server of datadir: a fast shutdown (a clean
// checkpoint, sessions cut).
func pgCtlStopCommand(bindir, datadir string) Command {
	return Command{On: "green", Path: filepath.Join(bindir, "pg_ctl"), Args: []string{"stop", "-w", "-t", "300", "-m", "fast", "-D", datadir}}
}

// initdbCommand makes green's new cluster to match the clone: superuser,
// encoding, locale, checksums. PostgreSQL 18's initdb turns checksums on by
// default, which pg_upgrade from a cluster without them refuses.
func (p CloneParams) initdbCommand(f CloneFacts, greenMajor int) Command {
	args := []string{"-D", p.Paths().Upgrading, "-U", f.Superuser, "--encoding", f.Encoding,
		"--lc-collate", f.Collate, "--lc-ctype", f.Ctype}
	if f.LocaleProvider == "i" {
		args = append(args, "--locale-provider", "icu", "--icu-locale", f.ICULocale)
	}
	switch {
	case f.DataChecksums:
		args = append(args, "--data-checksums")
	case greenMajor >= 18:
		args = append(args, "--no-data-checksums")
	}
	return Command{On: "green", Path: filepath.Join(p.GreenBindir, "initdb"), Args: args}
}

// upgradeCommand is pg_upgrade --link from the clone into the new cluster,
// run in the upgrade folder (it needs one its user can write).
func (p CloneParams) upgradeCommand(f CloneFacts) Command {
	ps, port := p.Paths(), strconv.Itoa(p.Port)
	return Command{On: "green", Path: filepath.Join(p.GreenBindir, "pg_upgrade"),
		Args: []string{"--link", "-b", p.BlueBindir, "-B", p.GreenBindir, "-d", ps.Basebackup, "-D", ps.Upgrading,
			"-U", f.Superuser, "-p", port, "-P", port, "-s", ps.UpgradeDir},
		Note: "run in " + ps.UpgradeDir}
}

// describeConfigCommand lists the settings green's server knows, so only
// those of blue's are carried over.
func (p CloneParams) describeConfigCommand() Command {
	return Command{On: "green", Path: filepath.Join(p.GreenBindir, "postgres"), Args: []string{"--describe-config"}, Note: "read only: which of blue's settings green knows"}
}

// runCommand runs c as u with env added and its output in outPath, in dir
// when given, and journals it as it ends.
func runCommand(ctx context.Context, u OSUser, c Command, env []string, dir, outPath string) error {
	cmd := u.Command(ctx, c.Path, c.Args...)
	cmd.Env = append(cmd.Env, env...)
	if dir != "" {
		cmd.Dir = dir
	}
	start := time.Now()
	err := RunToFile(cmd, outPath)
	c.Journal(ctx, time.Since(start), err)
	return err
}

// pgCtlStart starts the server of datadir with bindir's pg_ctl as u, its
// log appended to logPath (created for u first), unless one runs there
// already. pg_ctl is not killed on cancellation: killed mid-start it could
// leave a postmaster without its pid file; -t bounds it.
func pgCtlStart(ctx context.Context, u OSUser, bindir, datadir, logPath, opts string) error {
	if PostmasterPID(datadir) != 0 {
		return nil
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("preparing %s: %w", logPath, err)
	}
	f.Close()
	if err := u.Chown(logPath); err != nil {
		return err
	}
	if err := runCommand(context.WithoutCancel(ctx), u, pgCtlStartCommand(bindir, datadir, logPath, opts), nil, "", logPath+".pg_ctl"); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("starting PostgreSQL in %s: %w (server log %s: %s)", datadir, err, logPath, oscmd.LastLine(string(log)))
	}
	return ctx.Err()
}

// pgCtlStop stops the server of datadir, if one runs, and waits until it is gone.
func pgCtlStop(ctx context.Context, u OSUser, bindir, datadir, outPath string) error {
	if PostmasterPID(datadir) == 0 {
		return nil
	}
	if err := runCommand(context.WithoutCancel(ctx), u, pgCtlStopCommand(bindir, datadir), nil, "", outPath); err != nil {
		return fmt.Errorf("stopping PostgreSQL in %s: %w", datadir, err)
	}
	return nil
}

// factsQuerier is a pool or a connection.
type factsQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// readFacts reads what green's initdb must match: template0's encoding and
// locale, the bootstrap superuser, data checksums. On blue they are the
// clone's, so a dry run of clone-local reads them there.
func readFacts(ctx context.Context, q factsQuerier) (CloneFacts, error) {
	var f CloneFacts
	var ver int
	if err := q.QueryRow(ctx, serverVersionNumQuery).Scan(&ver); err != nil {
		return f, fmt.Errorf("reading the server's version: %w", err)
	}
	sql := `SELECT r.rolname::text, pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, '', '', current_setting('data_checksums') = 'on'
FROM pg_database d, pg_roles r WHERE d.datname = 'template0' AND r.oid = 10`
	if ver >= 150000 {
		sql = `SELECT r.rolname::text, pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text, d.datlocprovider::text, coalesce(d.daticulocale, '')::text, current_setting('data_checksums') = 'on'
FROM pg_database d, pg_roles r WHERE d.datname = 'template0' AND r.oid = 10`
	}
	if err := q.QueryRow(ctx, sql).Scan(&f.Superuser, &f.Encoding, &f.Collate, &f.Ctype, &f.LocaleProvider, &f.ICULocale, &f.DataChecksums); err != nil {
		return f, fmt.Errorf("reading the locale and encoding: %w", err)
	}
	return f, nil
}

// ClonePlanInputs are what clone-local's plan knows: the phase the clone
// is in, green's major, and, read from blue in a dry run, the facts and the
// publications of blue's database the clone will carry. Unknown facts are
// placeholders.
type ClonePlanInputs struct {
	From       ClonePhase
	GreenMajor int
	Facts      CloneFacts
	// Publications of blue's database (nil offline: a placeholder).
	Publications []string
}

// ReadClonePlanInputs reads them: the phase from the clone's files, the
// facts from the clone's saved facts or else from blue (q), the
// publications from blue. q nil: offline, placeholders.
func (p CloneParams) ReadClonePlanInputs(ctx context.Context, q interface {
	factsQuerier
	relicQuerier
}) (ClonePlanInputs, error) {
	in := ClonePlanInputs{From: CloneAbsent, Facts: CloneFacts{Superuser: Placeholder("the clone's bootstrap superuser"),
		Encoding: Placeholder("the clone's encoding"), Collate: Placeholder("the clone's lc_collate"), Ctype: Placeholder("the clone's lc_ctype")}}
	if q == nil {
		return in, nil
	}
	var err error
	if in.GreenMajor, err = BinMajor(ctx, p.GreenBindir); err != nil {
		return in, err
	}
	if in.From, err = p.Phase(in.GreenMajor); err != nil {
		return in, err
	}
	if in.From == ClonePrepared || in.From == CloneUpgrading {
		in.Facts, err = p.ReadCloneFacts()
	} else {
		in.Facts, err = readFacts(ctx, q)
	}
	if err != nil {
		return in, err
	}
	r, err := ReadRelics(ctx, q)
	in.Publications = r.Publications
	return in, err
}

// Actions is what Clone does from in.From on, in order: the plan of
// clone-local, built from the same commands Clone runs.
func (p CloneParams) Actions(in ClonePlanInputs) ([]CloneAction, error) {
	ps := p.Paths()
	var out []CloneAction
	from := in.From
	if from == CloneAbsent {
		c, _, err := p.basebackupCommand()
		if err != nil {
			return nil, err
		}
		out = append(out, cmdAction(c))
		from = CloneBackedUp
	}
	if from == CloneBackedUp || from == CloneRecovered {
		logPath := ps.CloneLog
		if from == CloneBackedUp {
			logPath = ps.RecoveryLog
		}
		out = append(out, CloneAction{Note: fmt.Sprintf("append to %s/postgresql.auto.conf: port = %d, unix_socket_directories, archive_mode = off, synchronous_standby_names = '', max_logical_replication_workers = 0", ps.Basebackup, p.Port)})
		if from == CloneBackedUp {
			out = append(out, CloneAction{Note: fmt.Sprintf("write %q to %s: the first `redo done at` after it is the seed's evidence", CloneStartMarker, ps.RecoveryLog)})
		}
		out = append(out, cmdAction(pgCtlStartCommand(p.BlueBindir, ps.Basebackup, logPath, cloneStartOptions)))
		pubs := in.Publications
		if pubs == nil {
			pubs = []string{Placeholder("each publication of blue's database")}
		}
		for _, s := range (DropRelicsParams{On: "green", Relics: Relics{Publications: pubs}}).Statements() {
			out = append(out, CloneAction{Stmt: &s})
		}
		others := DropRelicsParams{On: "green", Relics: Relics{Publications: []string{Placeholder("each publication of the clone's other databases, if any")},
			Slots: []string{"each logical slot on the clone, if any: pg_basebackup copies none"}}}.Statements()
		others[1].Args = []any{Later(others[1].Args[0].(string))}
		for _, s := range others {
			out = append(out, CloneAction{Stmt: &s})
		}
		out = append(out, cmdAction(pgCtlStopCommand(p.BlueBindir, ps.Basebackup)),
			CloneAction{Note: "save the clone's encoding, locale, superuser, checksums and configuration-file settings to " + ps.Facts})
		from = ClonePrepared
	}
	if from == ClonePrepared || from == CloneUpgrading {
		out = append(out, cmdAction(p.initdbCommand(in.Facts, in.GreenMajor)), cmdAction(p.upgradeCommand(in.Facts)),
			cmdAction(p.describeConfigCommand()),
			CloneAction{Note: fmt.Sprintf("copy pg_hba.conf and pg_ident.conf; append blue's settings green knows, port = %d; rename %s to %s; remove %s", p.Port, ps.Upgrading, ps.DataDir, ps.Basebackup)})
	}
	return append(out, cmdAction(pgCtlStartCommand(p.GreenBindir, ps.DataDir, ps.GreenLog, ""))), nil
}

// cloneStartOptions are the clone's first start's: English messages and
// the log on stderr (into -l), so the seed is read from `redo done at`.
const cloneStartOptions = "-c logging_collector=off -c lc_messages=C"

// ServerMajor connects to conninfo on a connection of its own (not a
// pool's: during clone-local green's port serves the clone, then green)
// and returns the server's major version.
func ServerMajor(ctx context.Context, conninfo string, connectTimeout time.Duration) (int, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return 0, fmt.Errorf("green.conninfo: %w", err)
	}
	cfg.ConnectTimeout = connectTimeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	var v int
	if err := conn.QueryRow(ctx, serverVersionNumQuery).Scan(&v); err != nil {
		return 0, err
	}
	return v / 10000, nil
}
