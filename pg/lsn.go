package pg

import (
	"io"

	"github.com/pgbluegreen/pgbluegreen/pg/lsn"
)

// LSN is a position in PostgreSQL's WAL; the one type lives in pg/lsn
// (which aws imports too), this name keeps pg's callers unchanged.
type LSN = lsn.LSN

// ErrNoRedoDone says a server log holds no `redo done at` line.
var ErrNoRedoDone = lsn.ErrNoRedoDone

// ParseLSN reads an LSN as PostgreSQL writes it (lsn.Parse).
func ParseLSN(s string) (LSN, error) { return lsn.Parse(s) }

// FirstRedoDone returns the LSN of the first `redo done at` message of a
// server log after startMarker (lsn.FirstRedoDone).
func FirstRedoDone(r io.Reader, startMarker string) (LSN, error) {
	return lsn.FirstRedoDone(r, startMarker)
}
