package pg

import (
	"strings"

	"github.com/jackc/pgx/v5"
)

// ident quotes an identifier as pgx does, except a Placeholder (a plan made
// offline), which renders as it is.
func ident(name string) string {
	if strings.HasPrefix(name, "<") && strings.HasSuffix(name, ">") {
		return name
	}
	return pgx.Identifier{name}.Sanitize()
}
