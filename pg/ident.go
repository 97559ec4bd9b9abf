package pg

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// The one identifier quoter and the one literal quoter of the program:
// every statement built here, and every name steps quotes in a message or
// a plan note, goes through them. Values go as bind parameters; these are
// for what cannot be one (a name, the text of DDL).

// Ident quotes a name as pgx does (pgx.Identifier.Sanitize: double quotes,
// a double quote doubled), or a qualified one given as its parts
// ("public", "OrderItems" -> "public"."OrderItems"). A Placeholder given
// alone (a name a plan made offline cannot know) renders as it is: no name
// of the configuration has angle brackets, and in a statement that runs it
// would be a syntax error, not a name.
func Ident(parts ...string) string {
	if len(parts) == 1 && isPlaceholder(parts[0]) {
		return parts[0]
	}
	return pgx.Identifier(parts).Sanitize()
}

func isPlaceholder(s string) bool { return strings.HasPrefix(s, "<") && strings.HasSuffix(s, ">") }

// QuoteLiteral quotes a string as an SQL literal the way PostgreSQL's
// quote_literal does: quotes doubled, and, when there is a backslash, an
// E'...' string with backslashes doubled, so it reads the same whatever
// standard_conforming_strings says.
func QuoteLiteral(s string) string {
	q := strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return "E'" + strings.ReplaceAll(q, `\`, `\\`) + "'"
	}
	return "'" + q + "'"
}
