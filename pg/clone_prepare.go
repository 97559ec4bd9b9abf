package pg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// notCarried are settings green does not take from blue: where it listens
// and keeps sockets (set here), and what reaches outside or was set only to
// keep the clone quiet.
var notCarried = []string{"port", "unix_socket_directories", "archive_mode", "archive_command", "archive_library",
	"restore_command", "synchronous_standby_names", "max_logical_replication_workers", "primary_conninfo",
	"primary_slot_name", "data_directory", "config_file", "hba_file", "ident_file", "external_pid_file",
	"logging_collector", "lc_messages"}

// cleanClone drops blue's publications (every database) and logical slots
// on the running clone, and reads the facts the upgrade needs.
func (p CloneParams) cleanClone(ctx context.Context) (CloneFacts, error) {
	var f CloneFacts
	conn, err := connectTimeout(ctx, p.GreenConninfo, "")
	if err != nil {
		return f, fmt.Errorf("connecting to the clone: %w", err)
	}
	defer conn.Close(context.Background())
	var inRecovery bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil {
		return f, fmt.Errorf("reading the clone's state: %w", err)
	}
	if inRecovery {
		return f, fmt.Errorf("the clone is still in recovery (a standby.signal or recovery.signal came with it?): remove the clone and run clone-local again")
	}
	if f, err = readFacts(ctx, conn); err != nil {
		return f, fmt.Errorf("the clone: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings
WHERE source = 'configuration file' AND NOT name = ANY($1) ORDER BY name`, notCarried)
	if err != nil {
		return f, fmt.Errorf("reading the clone's settings: %w", err)
	}
	for rows.Next() {
		var kv [2]string
		if err := rows.Scan(&kv[0], &kv[1]); err != nil {
			return f, fmt.Errorf("reading the clone's settings: %w", err)
		}
		f.Settings = append(f.Settings, kv)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("reading the clone's settings: %w", err)
	}
	var dbs []string
	rows, err = conn.Query(ctx, "SELECT datname::text FROM pg_database WHERE datallowconn ORDER BY 1")
	if err != nil {
		return f, fmt.Errorf("listing the clone's databases: %w", err)
	}
	if dbs, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return f, fmt.Errorf("listing the clone's databases: %w", err)
	}
	for _, db := range dbs {
		dropped, err := dropRelicsIn(ctx, p.GreenConninfo, db)
		if err != nil {
			return f, err
		}
		f.Dropped = append(f.Dropped, dropped...)
	}
	for _, d := range f.Dropped {
		p.logf("dropped on the clone: %s", d)
	}
	if left, err := RelicReplicationConn(ctx, conn); err != nil {
		return f, err
	} else if len(left) > 0 {
		return f, fmt.Errorf("replication objects still on the clone after dropping them: %s", strings.Join(left, ", "))
	}
	return f, nil
}

func connectTimeout(ctx context.Context, conninfo, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(conninfo)
	if err != nil {
		return nil, fmt.Errorf("parse connection string: %w", err)
	}
	if db != "" {
		cfg.Database = db
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	return pgx.ConnectConfig(ctx, cfg)
}
