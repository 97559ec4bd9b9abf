package steps

import (
	"net"
	"runtime"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sync tunes the copy strategy's initial sync and the statistics after it
// (the `sync:` section of the configuration). Zero values are planned from
// green's cores and settings.
type Sync struct {
	// GreenCores is how many cores green has. 0: this machine's when green
	// is on a loopback address or a socket (the lab), else 2.
	GreenCores int `yaml:"green_cores"`
	// AnalyzeJobs is how many connections analyze-green uses at once
	// (vacuumdb -j). 0: green's cores.
	AnalyzeJobs int `yaml:"analyze_jobs"`
}

// greenCores is sync.green_cores, or this machine's cores when green runs
// here, or 2: PostgreSQL has no SQL function that says.
func (c *Config) greenCores() int {
	if c.Sync.GreenCores > 0 {
		return c.Sync.GreenCores
	}
	if greenIsLocal(c.Green.Conninfo) {
		return runtime.NumCPU()
	}
	return 2
}

// greenIsLocal reports whether a connection string reaches this machine.
func greenIsLocal(conninfo string) bool {
	pc, err := pgconn.ParseConfig(conninfo)
	if err != nil {
		return false
	}
	if strings.HasPrefix(pc.Host, "/") || pc.Host == "localhost" {
		return true
	}
	ip := net.ParseIP(pc.Host)
	return ip != nil && ip.IsLoopback()
}
