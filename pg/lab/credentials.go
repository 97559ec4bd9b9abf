package lab

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/pgbluegreen/pgbluegreen/pg/internal/oscmd"
	"github.com/pgbluegreen/pgbluegreen/state"
)

// The lab's logins. Every one has a random password kept only in DIR/pgpass
// (0600), and logs in over TCP with SCRAM-SHA-256: blue, green and both
// PgBouncers. The servers store SCRAM verifiers, and so does PgBouncer's
// auth_file, never a password: PgBouncer then logs in to the server with
// the client's own SCRAM proof (pass-through), which works only where the
// server's verifier is the very same string (salt and iterations
// included), on blue and, after a cutover, on green.

// serverRoles are the lab's roles on the servers, in the order they are
// made; roleAttrs gives what CREATE ROLE says of each.
var serverRoles = []string{AdminRole, AppRole, ReplicationRole}

var roleAttrs = map[string]string{AdminRole: "SUPERUSER LOGIN", AppRole: "LOGIN", ReplicationRole: "LOGIN REPLICATION"}

// labLogins are the logins with a line in DIR/pgpass, in the file's order.
// The replication role's line stays last: readers written when it was the
// file's only line take the last line.
var labLogins = []string{AdminRole, AppRole, ConsoleUser, ReplicationRole}

// bouncerUsers are the users PgBouncer's auth_file lists: those that
// connect through it, and its console's.
var bouncerUsers = []string{AdminRole, AppRole, ConsoleUser}

// Password returns a lab login's password from DIR/pgpass, for a test that
// must write one where a passfile cannot go (a subscription's connection
// string, a role it makes).
func (i *Info) Password(login string) (string, error) {
	pw := readPgpass(i.Pgpass)[login]
	if pw == "" {
		return "", fmt.Errorf("no password for %s in %s", login, i.Pgpass)
	}
	return pw, nil
}

// readPgpass reads the lab's passfile (`*:*:*:login:password` lines) into
// login -> password; a missing or unreadable file is empty.
func readPgpass(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 5 && f[4] != "" && !strings.HasPrefix(line, "#") {
			out[f[3]] = f[4]
		}
	}
	return out
}

// readPgpassPassword is one login's password from the passfile, "" if none.
func readPgpassPassword(path, login string) string {
	return readPgpass(path)[login]
}

// ensurePasswords gives every lab login a password, keeping those DIR/pgpass
// has, and (re)writes the file when one was missing: 0600 and the lab's OS
// user's, so the servers (run as that user) can read it too when a
// superuser's subscription or foreign server names it (libpq refuses a
// passfile others can read, not one another user owns).
func ensurePasswords(u oscmd.User, path string) (map[string]string, error) {
	pw := readPgpass(path)
	changed := false
	for _, l := range labLogins {
		if pw[l] == "" {
			pw[l] = randomPassword()
			changed = true
		}
	}
	st, err := os.Stat(path)
	if !changed && err == nil && st.Mode().Perm() == 0o600 {
		return pw, nil
	}
	var b strings.Builder
	b.WriteString("# written by pgbluegreen lab up; libpq's passfile format\n")
	for _, l := range labLogins {
		fmt.Fprintf(&b, "*:*:*:%s:%s\n", l, pw[l])
	}
	if err := state.WriteFileAtomic(path, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	return pw, u.Chown(path)
}

// randomPassword is 32 characters from an alphabet that needs no escaping in
// pgpass, conninfo or SQL, and no SASLprep.
func randomPassword() string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

const scramIterations = 4096

// scramVerifier computes PostgreSQL's stored form of a SCRAM-SHA-256
// password (RFC 5802/7677) with a fresh salt, so only the verifier is ever
// sent to a server or written to PgBouncer's auth_file.
func scramVerifier(password string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	stored, server := scramKeys(password, salt, scramIterations)
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(stored), b64(server))
}

// scramKeys derives StoredKey and ServerKey from a password.
func scramKeys(password string, salt []byte, iterations int) (stored, server []byte) {
	salted, _ := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	s := sha256.Sum256(mac("Client Key"))
	return s[:], mac("Server Key")
}

// verifierMatches reports whether v is a SCRAM-SHA-256 verifier of
// password: a role whose verifier still matches keeps it (a second `lab up`
// changes nothing, and green's copy stays equal to blue's).
func verifierMatches(v, password string) bool {
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		return false
	}
	iterSalt, keys, _ := strings.Cut(rest, "$")
	iterText, saltB64, _ := strings.Cut(iterSalt, ":")
	storedB64, serverB64, _ := strings.Cut(keys, ":")
	iter, err := strconv.Atoi(iterText)
	salt, err1 := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || err1 != nil || iter < 1 || iter > 1<<20 {
		return false
	}
	stored, server := scramKeys(password, salt, iter)
	b64 := base64.StdEncoding.EncodeToString
	return subtle.ConstantTimeCompare([]byte(b64(stored)), []byte(storedB64)) == 1 &&
		subtle.ConstantTimeCompare([]byte(b64(server)), []byte(serverB64)) == 1
}

// roleVerifiers reads the stored password of each lab role on a server:
// role -> verifier ("" for none), absent when the role does not exist.
func roleVerifiers(ctx context.Context, conn *pgx.Conn) (map[string]string, error) {
	rows, err := conn.Query(ctx, "SELECT rolname::text, coalesce(rolpassword, '') FROM pg_authid WHERE rolname = ANY($1)", serverRoles)
	if err != nil {
		return nil, fmt.Errorf("reading the lab's roles: %w", err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, v string
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("reading the lab's roles: %w", err)
		}
		out[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the lab's roles: %w", err)
	}
	return out, nil
}

// blueVerifiers decides each role's verifier on blue: the one it has when
// it matches the passfile's password, else a new one.
func blueVerifiers(ctx context.Context, conn *pgx.Conn, passwords map[string]string) (map[string]string, error) {
	have, err := roleVerifiers(ctx, conn)
	if err != nil {
		return nil, err
	}
	want := map[string]string{}
	for _, r := range serverRoles {
		want[r] = have[r]
		if !verifierMatches(have[r], passwords[r]) {
			want[r] = scramVerifier(passwords[r])
		}
	}
	return want, nil
}

// alignRoles makes every lab role exist with exactly the verifier want
// gives it (LOGIN is left alone on a role that exists: a cutover's fence
// may have taken it). It runs in one transaction with statement logging
// off, so the server's log never holds a verifier.
func alignRoles(ctx context.Context, conn *pgx.Conn, want map[string]string) error {
	have, err := roleVerifiers(ctx, conn)
	if err != nil {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.Background())
	stmts := []string{"SET LOCAL log_statement = 'none'", "SET LOCAL log_min_duration_statement = -1"}
	for _, r := range serverRoles {
		v, exists := have[r]
		id := pgx.Identifier{r}.Sanitize()
		switch {
		case !exists:
			stmts = append(stmts, "CREATE ROLE "+id+" "+roleAttrs[r]+" PASSWORD "+sqlLiteral(want[r]))
		case v != want[r]:
			stmts = append(stmts, "ALTER ROLE "+id+" PASSWORD "+sqlLiteral(want[r]))
		}
	}
	for _, s := range stmts {
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("giving the lab's roles their passwords: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("giving the lab's roles their passwords: %w", err)
	}
	return nil
}

// sqlLiteral quotes a verifier for CREATE/ALTER ROLE, which take no
// parameters. A verifier holds base64, digits, '$' and ':' only; doubling
// quotes keeps anything else a literal too.
func sqlLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// readUserlist reads a PgBouncer auth_file (`"user" "secret"` lines).
func readUserlist(path string) map[string]string {
	out := map[string]string{}
	b, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			out[strings.Trim(f[0], `"`)] = strings.Trim(f[1], `"`)
		}
	}
	return out
}

// userlistText is PgBouncer's auth_file: a SCRAM verifier per user, the
// server's own for the roles that log in to it through PgBouncer.
func userlistText(verifiers map[string]string) string {
	var b strings.Builder
	for _, u := range bouncerUsers {
		fmt.Fprintf(&b, "%q %q\n", u, verifiers[u])
	}
	return b.String()
}
