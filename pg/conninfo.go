package pg

import (
	"net/url"
	"strings"
)

// WithDatabase is conninfo (a libpq keyword string or a postgres:// URL)
// naming database db instead of its own: every other keyword, TLS and the
// passfile included, is kept. A keyword string gets dbname appended, which
// wins over an earlier one in libpq and pgx alike.
func WithDatabase(conninfo, db string) string {
	if strings.HasPrefix(conninfo, "postgres://") || strings.HasPrefix(conninfo, "postgresql://") {
		if u, err := url.Parse(conninfo); err == nil {
			u.Path = "/" + db
			u.RawPath = ""
			return u.String()
		}
	}
	if strings.TrimSpace(conninfo) == "" {
		return "dbname=" + QuoteConninfoValue(db)
	}
	return conninfo + " dbname=" + QuoteConninfoValue(db)
}
