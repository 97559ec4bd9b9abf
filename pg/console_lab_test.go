package pg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/lab"
)

// TestConsole drives a real PgBouncer: SHOW DATABASES and pool mode, PAUSE
// holds a client until RESUME, and a repoint + RELOAD + WAIT_CLOSE moves a
// client to green, then back.
func TestConsole(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	i := l.info
	c, err := ConnectConsole(ctx, "lab", i.PgBouncer.AdminConninfo, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, err := c.Database(ctx, lab.AppDB)
	if err != nil || d.Host != "127.0.0.1" || d.Port != i.Blue.Port || d.Paused {
		t.Fatalf("SHOW DATABASES: %+v %v", d, err)
	}
	if mode, err := c.PoolMode(ctx, lab.AppDB); err != nil || mode != "transaction" {
		t.Fatalf("pool mode %q %v", mode, err)
	}
	blueVersion, err := VersionThrough(ctx, i.PgBouncer.Conninfo)
	if err != nil || !strings.Contains(blueVersion, "PostgreSQL 15") {
		t.Fatalf("version through PgBouncer: %q %v", blueVersion, err)
	}

	if err := c.Pause(ctx, lab.AppDB); err != nil {
		t.Fatal(err)
	}
	if d, _ := c.Database(ctx, lab.AppDB); !d.Paused {
		t.Error("SHOW DATABASES does not say paused after PAUSE")
	}
	got := make(chan error, 1)
	go func() { _, err := VersionThrough(ctx, i.PgBouncer.Conninfo); got <- err }()
	select {
	case err := <-got:
		t.Fatalf("a client query finished while paused: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.Resume(ctx, lab.AppDB); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the held query failed after RESUME: %v", err)
	}
	if err := c.Resume(ctx, lab.AppDB); !IsNotPaused(err) {
		t.Errorf("RESUME of a running database: %v, want a not-paused error", err)
	}

	green := Endpoint{Host: "127.0.0.1", Port: i.Green.Port, DBName: lab.AppDB}
	bk, err := RepointIni(i.PgBouncer.Ini, lab.AppDB, green)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context) error{c.Reload, func(ctx context.Context) error { return c.WaitClose(ctx, lab.AppDB) }} {
		if err := step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := VersionThrough(ctx, i.PgBouncer.Conninfo); err != nil || !strings.Contains(v, "PostgreSQL 17") {
		t.Fatalf("after repoint, version through PgBouncer: %q %v", v, err)
	}
	if d, _ := c.Database(ctx, lab.AppDB); d.Port != i.Green.Port {
		t.Errorf("SHOW DATABASES port %d after repoint, want green's %d", d.Port, i.Green.Port)
	}
	if err := bk.Restore(); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := VersionThrough(ctx, i.PgBouncer.Conninfo); err != nil || v != blueVersion {
		t.Fatalf("after restore, version through PgBouncer: %q %v", v, err)
	}
}
