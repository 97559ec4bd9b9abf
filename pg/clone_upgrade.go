package pg

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// upgrade makes green: a new cluster initdb'd with green's binaries to
// match the clone (superuser, encoding, locale, checksums), pg_upgrade
// --link from the clone, blue's settings and pg_hba.conf carried over, then
// renamed into DataDir. The clone is removed: after --link it cannot start.
func (p CloneParams) upgrade(ctx context.Context, u OSUser, greenMajor int) error {
	ps := p.Paths()
	facts, err := p.ReadCloneFacts()
	if err != nil {
		return err
	}
	// pg_upgrade may have left either server running when it was interrupted.
	if err := pgCtlStop(ctx, u, p.BlueBindir, ps.Basebackup, filepath.Join(ps.Work, "pg_ctl_stop.out")); err != nil {
		return err
	}
	if fileExists(ps.Upgrading) {
		if err := pgCtlStop(ctx, u, p.GreenBindir, ps.Upgrading, filepath.Join(ps.Work, "pg_ctl_stop.out")); err != nil {
			return err
		}
		// --link renames the clone's global/pg_control before it links
		// files, and pg_upgrade removes its output folder in the new
		// cluster only once it has succeeded.
		switch {
		case fileExists(filepath.Join(ps.Basebackup, "global", "pg_control")):
			p.logf("an earlier pg_upgrade did not finish; the clone is intact: starting the upgrade again")
			if err := os.RemoveAll(ps.Upgrading); err != nil {
				return fmt.Errorf("clearing the interrupted upgrade: %w", err)
			}
		case !fileExists(filepath.Join(ps.Upgrading, "pg_upgrade_output.d")) && fileExists(filepath.Join(ps.Upgrading, "global", "pg_control")):
			p.logf("an earlier pg_upgrade had finished: configuring green")
			return p.finishUpgrade(ctx, u, facts)
		default:
			return errLinkInterrupted
		}
	}
	if err := u.MkdirFor(ps.Upgrading, 0o700); err != nil {
		return err
	}
	initdb := p.initdbCommand(facts, greenMajor)
	p.logf("%s", initdb.String())
	start := time.Now()
	if err := runCommand(ctx, u, initdb, nil, "", filepath.Join(ps.Work, "initdb.out")); err != nil {
		return fmt.Errorf("initdb of green: %w", err)
	}
	p.logf("initdb done in %s", time.Since(start).Round(time.Millisecond))
	up := p.upgradeCommand(facts)
	p.logf("%s", up.String())
	start = time.Now()
	if err := runCommand(ctx, u, up, nil, ps.UpgradeDir, filepath.Join(ps.Work, "pg_upgrade.out")); err != nil {
		return fmt.Errorf("pg_upgrade: %w", err)
	}
	p.logf("pg_upgrade itself took %s", time.Since(start).Round(time.Millisecond))
	return p.finishUpgrade(ctx, u, facts)
}

// errLinkInterrupted: pg_upgrade --link stopped after it began linking the
// clone's files into green: neither cluster can be used.
var errLinkInterrupted = errors.New("pg_upgrade --link was interrupted after it began linking the clone into green")

// finishUpgrade configures the upgraded cluster, gives it DataDir's name
// and removes the clone, whose files now belong to green.
func (p CloneParams) finishUpgrade(ctx context.Context, u OSUser, facts CloneFacts) error {
	ps := p.Paths()
	if err := p.configureGreen(ctx, u, facts); err != nil {
		return err
	}
	if fileExists(ps.DataDir) {
		if err := os.Remove(ps.DataDir); err != nil { // an empty folder, checked by Phase
			return fmt.Errorf("making room for green: %w", err)
		}
	}
	if err := os.Rename(ps.Upgrading, ps.DataDir); err != nil {
		return fmt.Errorf("naming green's data directory: %w", err)
	}
	if err := os.RemoveAll(ps.Basebackup); err != nil {
		return fmt.Errorf("removing the upgraded clone's old files: %w", err)
	}
	return nil
}

// configureGreen gives the upgraded cluster blue's pg_hba.conf and
// pg_ident.conf and blue's settings that green's server knows, with its own
// port and socket folder.
func (p CloneParams) configureGreen(ctx context.Context, u OSUser, facts CloneFacts) error {
	ps := p.Paths()
	for _, name := range []string{"pg_hba.conf", "pg_ident.conf"} {
		b, err := os.ReadFile(filepath.Join(ps.Basebackup, name))
		if err != nil {
			continue // pg_ident.conf may be absent; pg_hba.conf was checked after the backup
		}
		dst := filepath.Join(ps.Upgrading, name)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			return fmt.Errorf("copying %s to green: %w", name, err)
		}
		if err := u.Chown(dst); err != nil {
			return err
		}
	}
	known, err := knownSettings(ctx, u, p.describeConfigCommand(), ps.Work)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("\n# pgbluegreen: blue's settings, carried over by clone-local\n")
	for _, kv := range facts.Settings {
		if !known[kv[0]] {
			p.logf("setting %s = %q not carried: green's server does not know it", kv[0], kv[1])
			continue
		}
		fmt.Fprintf(&b, "%s = '%s'\n", kv[0], confQuote(kv[1]))
	}
	fmt.Fprintf(&b, "port = %d\nunix_socket_directories = '%s'\n", p.Port, confQuote(ps.SocketDir))
	if err := appendConf(u, filepath.Join(ps.Upgrading, "postgresql.auto.conf"), b.String()); err != nil {
		return fmt.Errorf("configuring green: %w", err)
	}
	return nil
}

// knownSettings lists the settings a server build knows (postgres
// --describe-config: one tab-separated line per setting, name first).
func knownSettings(ctx context.Context, u OSUser, c Command, work string) (map[string]bool, error) {
	out := filepath.Join(work, "describe-config.out")
	if err := runCommand(ctx, u, c, nil, "", out); err != nil {
		return nil, fmt.Errorf("listing green's settings: %w", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("listing green's settings: %w", err)
	}
	known := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if name, _, ok := strings.Cut(sc.Text(), "\t"); ok {
			known[name] = true
		}
	}
	return known, nil
}

// appendConf appends settings to a server's postgresql.auto.conf and leaves
// the file to the OS user the server runs as.
func appendConf(u OSUser, path, text string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return u.Chown(path)
}
