package lab

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// UpParams are the inputs of Up.
type UpParams struct {
	Dir      string    // the lab's folder; its parents must be traversable by the OS user
	CacheDir string    // where `lab deps` put builds; "" = DefaultCacheDir()
	Strategy string    // "copy" (default, or the lab's earlier choice) or "clone"
	Log      io.Writer // progress lines; nil = none
}

// Up builds the lab in p.Dir, or brings an existing one back up: it reuses
// the ports and builds in lab.json, starts what is stopped and leaves data
// alone. On failure or cancellation it stops what this call started.
func Up(ctx context.Context, p UpParams) (info *Info, err error) {
	log := p.Log
	if log == nil {
		log = io.Discard
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("resolving the lab folder: %w", err)
	}
	u, err := currentOSUser()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the lab folder: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("opening the lab folder to OS user %s: %w", u.Name, err)
	}
	if err := checkTraversable(u, dir); err != nil {
		return nil, err
	}
	cacheDir := p.CacheDir
	if cacheDir == "" {
		cacheDir = DefaultCacheDir()
	}
	old, _ := ReadInfo(dir)
	p.CacheDir = cacheDir
	if old == nil || !hasPrograms(old.Green.BinDir) {
		// First use: the newer major is fetched (pinned, verified) so the
		// binary alone gives a real upgrade; without it, both sides run
		// the one major found, and the notice says so.
		if err := EnsurePinned(ctx, cacheDir, log); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			fmt.Fprintf(log, "could not fetch PostgreSQL %s: %v\n", PinnedPGVersion, err)
		}
	}
	info, err = planInfo(dir, p, old, u)
	if err != nil {
		return nil, err
	}
	for _, b := range []string{info.Blue.BinDir, info.Green.BinDir} {
		// A cache under /root cannot be run by the postgres OS user.
		if err := checkTraversable(u, filepath.Join(b, "postgres")); err != nil {
			return nil, fmt.Errorf("build %s: %w", b, err)
		}
	}
	if info.Notice != "" {
		fmt.Fprintln(log, info.Notice)
	}
	runDir, logDir := filepath.Join(dir, "run"), filepath.Join(dir, "logs")
	for _, d := range []string{runDir, logDir} {
		if err := u.MkdirFor(d, 0o755); err != nil {
			return nil, err
		}
	}
	passwords, err := ensurePasswords(u, info.Pgpass)
	if err != nil {
		return nil, err
	}

	// Whatever this call starts is stopped again if it does not finish:
	// Ctrl+C during `up` leaves nothing behind.
	var mu sync.Mutex
	var started []func()
	defer func() {
		if err != nil {
			for k := len(started) - 1; k >= 0; k-- {
				started[k]()
			}
		}
	}()
	servers := []Server{info.Blue}
	if info.Strategy != "clone" {
		servers = append(servers, info.Green)
	}
	errs := make([]error, len(servers))
	var wg sync.WaitGroup
	for k, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[k] = startLabServer(ctx, u, srv, runDir, logDir, cacheDir, log, func(stop func()) {
				mu.Lock()
				started = append(started, stop)
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return nil, e
		}
	}
	verifiers, err := setupBlue(ctx, info, runDir, passwords)
	if err != nil {
		return nil, err
	}
	if info.Strategy != "clone" {
		if err := setupGreen(ctx, info.Green, runDir, verifiers); err != nil {
			return nil, err
		}
	}
	// The console's verifier is PgBouncer's alone: kept while it matches.
	verifiers[ConsoleUser] = readUserlist(filepath.Join(filepath.Dir(info.PgBouncer.Ini), userlistFile))[ConsoleUser]
	if !verifierMatches(verifiers[ConsoleUser], passwords[ConsoleUser]) {
		verifiers[ConsoleUser] = scramVerifier(passwords[ConsoleUser])
	}
	if info.SSHD.Port > 0 {
		if err := writeSSHFiles(u, &info.SSHD); err != nil {
			return nil, err
		}
		fresh, err := startSSHD(ctx, u, &info.SSHD)
		if fresh {
			started = append(started, func() { _ = stopSSHD(context.Background(), &info.SSHD) })
		}
		if err != nil {
			return nil, err
		}
		if fresh {
			fmt.Fprintf(log, "sshd started on port %d (the lab's own, as %s)\n", info.SSHD.Port, info.SSHD.User)
		}
	}
	for _, b := range info.Bouncers() {
		if err := writeBouncerConfig(u, info, b, runDir, userlistText(verifiers)); err != nil {
			return nil, err
		}
		fresh, err := startBouncer(ctx, u, b)
		if fresh {
			started = append(started, func() { _ = stopBouncer(context.Background(), b) })
		}
		if err != nil {
			return nil, err
		}
		if fresh {
			fmt.Fprintf(log, "PgBouncer %s started on port %d\n", b.Name, b.Port)
		}
	}
	if err := writeInfo(info); err != nil {
		return nil, err
	}
	if err := state.WriteFileAtomic(info.Config, []byte(configYAML(info)), 0o644); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return info, nil
}

// startLabServer makes sure one server exists and runs.
func startLabServer(ctx context.Context, u oscmd.User, srv Server, runDir, logDir, cacheDir string, log io.Writer, onStart func(func())) error {
	name := filepath.Base(srv.DataDir)
	how, err := initServer(ctx, u, srv, runDir, logDir, cacheDir)
	if err != nil {
		return err
	}
	if how != "" {
		fmt.Fprintf(log, "%s: cluster made (PostgreSQL %s, %s)\n", name, srv.Version, how)
	}
	if ServerPID(srv.DataDir) == 0 {
		err := startServer(ctx, u, srv.BinDir, srv.DataDir, filepath.Join(logDir, name+".log"))
		onStart(func() { _ = StopServer(context.Background(), srv.DataDir) })
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(log, "%s: PostgreSQL %s started on port %d\n", name, srv.Version, srv.Port)
	}
	return nil
}

// setupBlue gives blue its roles with their passwords, its databases, and
// their schemas and data; it returns the roles' SCRAM verifiers, which
// green and PgBouncer's auth_file must hold exactly.
func setupBlue(ctx context.Context, info *Info, runDir string, passwords map[string]string) (map[string]string, error) {
	conn, err := connect(ctx, adminConninfo(runDir, info.Blue.Port, "postgres"))
	if err != nil {
		return nil, fmt.Errorf("blue: connecting over its unix socket: %w", err)
	}
	defer conn.Close(context.Background())
	want, err := blueVerifiers(ctx, conn, passwords)
	if err != nil {
		return nil, fmt.Errorf("blue: %w", err)
	}
	if err := alignRoles(ctx, conn, want); err != nil {
		return nil, fmt.Errorf("blue: %w", err)
	}
	if err := ensureDatabases(ctx, conn, Databases); err != nil {
		return nil, fmt.Errorf("blue: %w", err)
	}
	if info.LargeObject, err = ensureSchema(ctx, adminConninfo(runDir, info.Blue.Port, AppDB)); err != nil {
		return nil, err
	}
	if err := ensureBilling(ctx, adminConninfo(runDir, info.Blue.Port, BillingDB)); err != nil {
		return nil, err
	}
	return want, nil
}

// setupGreen gives the copy strategy's green blue's roles with the very
// same verifiers (until pgbluegreen copies roles itself) and an empty
// database app for the schema copy. Database billing is not made: moving
// it is pgbluegreen's job.
func setupGreen(ctx context.Context, srv Server, runDir string, verifiers map[string]string) error {
	conn, err := connect(ctx, adminConninfo(runDir, srv.Port, "postgres"))
	if err != nil {
		return fmt.Errorf("green: connecting over its unix socket: %w", err)
	}
	defer conn.Close(context.Background())
	if err := alignRoles(ctx, conn, verifiers); err != nil {
		return fmt.Errorf("green: %w", err)
	}
	if err := ensureDatabases(ctx, conn, []string{AppDB}); err != nil {
		return fmt.Errorf("green: %w", err)
	}
	return nil
}

// planInfo decides builds and ports: those of an earlier lab in dir when
// there is one (its data was made with those builds), else fresh ones.
func planInfo(dir string, p UpParams, old *Info, u oscmd.User) (*Info, error) {
	strategy := p.Strategy
	if strategy == "" {
		strategy = "copy"
		if old != nil && old.Strategy != "" {
			strategy = old.Strategy
		}
	}
	if strategy != "copy" && strategy != "clone" {
		return nil, fmt.Errorf("unknown strategy %q: use copy or clone", strategy)
	}
	if old != nil && len(old.Databases) == 0 && old.Blue.Port > 0 {
		return nil, fmt.Errorf("the lab in %s was made before the lab had passwords and a second database: remake it with `pgbluegreen lab down --purge --dir %s` then `lab up`", dir, dir)
	}
	i := &Info{
		Dir: dir, Strategy: strategy, ReplicationRole: ReplicationRole, Databases: Databases,
		Pgpass: filepath.Join(dir, "pgpass"), OSUser: u.Name,
		Config: filepath.Join(dir, ConfigFile), Ledger: filepath.Join(dir, LedgerFile),
	}
	if old != nil && hasPrograms(old.Blue.BinDir) && hasPrograms(old.Green.BinDir) && old.Blue.Port > 0 {
		i.Blue, i.Green, i.Clone, i.Notice = old.Blue, old.Green, old.Clone, old.Notice
		i.PgBouncer.Port = old.PgBouncer.Port
		i.PgBouncerSSH.Port, i.SSHD.Port = old.PgBouncerSSH.Port, old.SSHD.Port
	} else {
		builds, err := FindBuilds(p.CacheDir)
		if err != nil {
			return nil, err
		}
		blue, green, notice, err := ChooseBuilds(builds)
		if err != nil {
			return nil, err
		}
		ports, err := freePorts(4, nil)
		if err != nil {
			return nil, err
		}
		i.Notice = notice
		i.Blue = Server{Major: blue.Major, Version: blue.Version, BinDir: blue.BinDir, DataDir: filepath.Join(dir, "blue"), Port: ports[0]}
		i.Green = Server{Major: green.Major, Version: green.Version, BinDir: green.BinDir, DataDir: filepath.Join(dir, "green"), Port: ports[1]}
		i.PgBouncer.Port = ports[2]
		i.Clone = Clone{Port: ports[3], DataDir: filepath.Join(dir, "green-clone")}
	}
	i.Blue.Conninfo = serverConninfo(i.Blue.Port, i.Pgpass)
	i.Green.Conninfo = serverConninfo(i.Green.Port, i.Pgpass)
	i.Clone.Conninfo = serverConninfo(i.Clone.Port, i.Pgpass)
	i.PgBouncer = labBouncer(dir, "lab", "pgbouncer", i.PgBouncer.Port, i.Pgpass)
	switch {
	case !HasSSHD():
		// Without openssh-server the lab has one PgBouncer, and says so.
		i.PgBouncerSSH, i.SSHD = Bouncer{}, SSHD{}
		if !strings.Contains(i.Notice, noSSHDNotice) {
			i.Notice = strings.TrimSpace(i.Notice + " " + noSSHDNotice)
		}
	case i.PgBouncerSSH.Port == 0 || i.SSHD.Port == 0:
		// A lab made before it had one gets ports for it now.
		avoid := map[int]bool{i.Blue.Port: true, i.Green.Port: true, i.PgBouncer.Port: true, i.Clone.Port: true}
		ports, err := freePorts(2, avoid)
		if err != nil {
			return nil, err
		}
		i.PgBouncerSSH.Port, i.SSHD.Port = ports[0], ports[1]
	}
	if i.SSHD.Port > 0 {
		i.PgBouncerSSH = labBouncer(dir, "lab-ssh", "pgbouncer-ssh", i.PgBouncerSSH.Port, i.Pgpass)
		sshDir := filepath.Join(dir, "ssh")
		i.SSHD = SSHD{Port: i.SSHD.Port, User: u.Name, Key: filepath.Join(sshDir, "id_ed25519"), KnownHosts: filepath.Join(sshDir, "known_hosts"),
			Config: filepath.Join(sshDir, "sshd_config"), PidFile: filepath.Join(dir, "run", "sshd.pid"), LogFile: filepath.Join(dir, "logs", "sshd.log")}
	}
	return i, nil
}

const noSSHDNotice = "openssh-server is not installed: the second PgBouncer (its ini reached over SSH) is left out (run `make deps`)"

// labBouncer is one of the lab's PgBouncers: its ini in DIR/sub, its
// pidfile and log named after sub.
func labBouncer(dir, name, sub string, port int, pgpass string) Bouncer {
	return Bouncer{Name: name, Port: port,
		Ini:           filepath.Join(dir, sub, "pgbouncer.ini"),
		PidFile:       filepath.Join(dir, "run", sub+".pid"),
		LogFile:       filepath.Join(dir, "logs", sub+".log"),
		Conninfo:      tcpConninfo(port, AppDB, AppRole, pgpass),
		AdminConninfo: tcpConninfo(port, "pgbouncer", ConsoleUser, pgpass)}
}
