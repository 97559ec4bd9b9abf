package config

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgpassfile"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgbluegreen/pgbluegreen/aws"
)

// secretReadTimeout bounds reading the password from Secrets Manager, SDK
// retries included.
const secretReadTimeout = time.Minute

// ConnPassword returns the password pgx would use for a connection string,
// from the string itself, PGPASSWORD or the passfile.
func ConnPassword(conninfo string) (string, error) {
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return "", err
	}
	return pc.Password, nil
}

// ReplicationPassword reads the replication role's password from the source
// the configuration names. It is used at run time only and never stored.
func (c *Config) ReplicationPassword() (string, error) {
	src := c.Replication.Password
	switch {
	case src.Env != "":
		pw := os.Getenv(src.Env)
		if pw == "" {
			return "", fmt.Errorf("replication password: environment variable %s is empty; export it before starting pgbluegreen", src.Env)
		}
		return pw, nil
	case src.PgpassFile != "" || src.Pgpass:
		path := src.PgpassFile
		if path == "" {
			path = os.Getenv("PGPASSFILE")
		}
		if path == "" {
			home, _ := os.UserHomeDir()
			path = filepath.Join(home, ".pgpass")
		}
		pf, err := pgpassfile.ReadPassfile(path)
		if err != nil {
			return "", fmt.Errorf("replication password: read passfile %s: %w", path, err)
		}
		host, port, db := c.ReplicationEndpoint()
		pw := pf.FindPassword(host, port, db, c.Replication.Role)
		if pw == "" {
			return "", fmt.Errorf("replication password: no line for %s:%s:%s:%s in %s; add one (host:port:db:user:password)", host, port, db, c.Replication.Role, path)
		}
		return pw, nil
	default:
		client := c.aws
		if client == nil {
			return "", fmt.Errorf("replication password: secret_arn %s needs AWS access, which this command did not set up; check aws.region / aws.profile", src.SecretARN)
		}
		// Callers have no context to pass: bound the read here.
		ctx, cancel := context.WithTimeout(context.Background(), secretReadTimeout)
		defer cancel()
		pw, err := client.Password(ctx, aws.GetSecretParams{SecretID: src.SecretARN})
		if err != nil {
			return "", fmt.Errorf("replication password: %w", err)
		}
		return pw, nil
	}
}

// ReplicationEndpoint is blue's host, port and database as green sees them.
func (c *Config) ReplicationEndpoint() (host, port, db string) {
	conninfo := c.Blue.Conninfo
	if c.Replication.BlueConninfo != "" {
		conninfo = c.Replication.BlueConninfo
	}
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return "", "", ""
	}
	return pc.Host, strconv.Itoa(int(pc.Port)), pc.Database
}
