package pg

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The statements of a large objects' copy (CopyLargeObjectsParams), built
// once: its plan shows them, its Exec runs them.

// loBytes is content sent to green: bound as bytea, rendered by plans and
// the journal as its size (no content ever reaches the journal).
type loBytes []byte

func (b loBytes) String() string { return Placeholder(Bytes(int64(len(b))) + " of content") }

// loContents are several objects' contents, bound as bytea[].
type loContents [][]byte

func (c loContents) String() string {
	n := 0
	for _, b := range c {
		n += len(b)
	}
	return Placeholder(fmt.Sprintf("%s of content of %d objects", Bytes(int64(n)), len(c)))
}

// chunkBuf is a scan target that reuses its buffer.
type chunkBuf struct{ b []byte }

// ScanBytes copies the column's bytes into the buffer (pgtype.BytesScanner).
func (c *chunkBuf) ScanBytes(v []byte) error { c.b = append(c.b[:0], v...); return nil }

// The statements of a copy. Reads of blue run in its snapshot.
var (
	loBlueBegin = Stmt{On: "blue", SQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", Note: "one snapshot for every read of blue below; no write"}
	loBlueSet   = []Stmt{
		{On: "blue", SQL: "SET LOCAL statement_timeout = 0"},
		{On: "blue", SQL: "SET LOCAL idle_in_transaction_session_timeout = 0", Note: "blue waits while green writes"},
	}
	loBlueCommit = Stmt{On: "blue", SQL: "COMMIT"}
	loGreenSet   = Stmt{On: "green", SQL: "SET statement_timeout = 0", Note: "on the one session that writes, closed at the end"}
	loCountStmt  = Stmt{On: "blue", SQL: "SELECT count(*) FROM pg_largeobject_metadata"}
)

// bothSides is where a read runs on each server (a plan shows it once).
const bothSides = "blue, green"

func loListStmt(on string) Stmt {
	return Stmt{On: on, SQL: loListSQL, Args: []any{Later("the last OID read, 0 first"), loPage}, Note: "on each side a page at a time, in OID order, merged"}
}

func loHashStmt(on string, what string) Stmt {
	return Stmt{On: on, SQL: loHashSQL, Args: []any{Later(what), Later("their sizes"), LargeObjectHashPiece}}
}

func loGetManyStmt(oids any) Stmt {
	return Stmt{On: "blue", SQL: "SELECT u.o, lo_get(u.o) FROM unnest($1::oid[]) AS u(o)", Args: []any{oids}}
}

func loGetStmt(oid, off, n any) Stmt {
	return Stmt{On: "blue", SQL: "SELECT lo_get($1, $2, $3)", Args: []any{oid, off, n}}
}

func loUnlinkStmt(oids any) Stmt {
	return Stmt{On: "green", SQL: "SELECT lo_unlink(u.o) FROM unnest($1::oid[]) AS u(o)", Args: []any{oids}}
}

// loRoleStmt makes the objects created in the transaction the owner's.
func loRoleStmt(owner string) Stmt {
	return Stmt{On: "green", SQL: "SET LOCAL ROLE " + Ident(owner)}
}

func loCreateManyStmt(oids, data any) Stmt {
	return Stmt{On: "green", SQL: "SELECT lo_from_bytea(t.o, t.d) FROM unnest($1::oid[], $2::bytea[]) AS t(o, d)", Args: []any{oids, data}}
}

func loCreateStmt(oid, data any) Stmt {
	return Stmt{On: "green", SQL: "SELECT lo_from_bytea($1, $2)", Args: []any{oid, data}}
}

func loPutStmt(oid, off, data any) Stmt {
	return Stmt{On: "green", SQL: "SELECT lo_put($1, $2, $3)", Args: []any{oid, off, data}}
}

func loOwnerStmt(oid, owner string) Stmt {
	return Stmt{On: "green", SQL: "ALTER LARGE OBJECT " + oid + " OWNER TO " + Ident(owner)}
}

func loRevokeStmt(oid string, grantees []string) Stmt {
	return Stmt{On: "green", SQL: "REVOKE ALL ON LARGE OBJECT " + oid + " FROM " + strings.Join(grantees, ", ")}
}

func loGrantStmt(oid, privileges, grantee string, grantable bool) Stmt {
	s := "GRANT " + privileges + " ON LARGE OBJECT " + oid + " TO " + grantee
	if grantable {
		s += " WITH GRANT OPTION"
	}
	return Stmt{On: "green", SQL: s}
}

func loCommentStmt(oid, comment string) Stmt {
	text := "NULL"
	if comment != "" {
		text = QuoteLiteral(comment)
	}
	return Stmt{On: "green", SQL: "COMMENT ON LARGE OBJECT " + oid + " IS " + text}
}

// Statements are what Exec runs; which of the writes, and with what, is
// known only as it compares.
func (p CopyLargeObjectsParams) Statements() []Stmt {
	ch := p.chunk()
	oid, owner := Placeholder("oid"), Placeholder("its owner on blue")
	out := []Stmt{loGreenSet, loBlueBegin}
	out = append(out, loBlueSet...)
	out = append(out,
		Stmt{On: "blue", SQL: loWritesSQL, Note: "kept in the digest: how LargeObjectsChanged tells a later write"},
		loCountStmt, loListStmt(bothSides))
	out = append(out,
		loHashStmt(bothSides, "the objects of the page of equal size on both sides").With("md5 of each computed on each server at once, no content sent"),
		loUnlinkStmt(Later("the page's objects on green and not on blue, and those copied again")),
		loGetManyStmt(Later(fmt.Sprintf("objects up to %s, up to %s of them together", Bytes(ch), Bytes(ch)))),
		Stmt{On: "green", SQL: "BEGIN", Note: "for those objects, owner by owner"},
		loRoleStmt(owner).With("what it creates is the owner's"),
		loCreateManyStmt(Later("their OIDs"), Later("their contents")),
		Stmt{On: "green", SQL: "COMMIT"},
		loGetStmt(Later("an object over "+Bytes(ch)), Later("offset"), ch).With("a chunk at a time, the next read while green writes the last"),
		Stmt{On: "green", SQL: "BEGIN"},
		loRoleStmt(owner),
		loCreateStmt(Later("its OID"), Later("its first chunk")),
		Stmt{On: "green", SQL: "COMMIT"},
		loPutStmt(Later("its OID"), Later("offset"), Later("each next chunk")).With("the first journaled, the rest quietly"),
		loHashStmt("green", "the objects copied").With("checked against the md5 of what was read from blue"),
		loOwnerStmt(oid, "<its owner on blue>").With("content equal, owner not"),
		loRevokeStmt(oid, []string{Placeholder("every role in its privileges on either side, and PUBLIC")}).With("privileges not the owner's defaults, or differing"),
		loGrantStmt(oid, Placeholder("its privileges on blue"), Placeholder("each grantee on blue"), false).With("WITH GRANT OPTION as on blue"),
		Stmt{On: "green", SQL: "COMMENT ON LARGE OBJECT " + oid + " IS " + Placeholder("its comment on blue, quoted, or NULL")},
		Stmt{On: "green", SQL: loListOIDsSQL, Args: []any{Later("the objects written")}, Note: "read back and compared"},
		loBlueCommit,
	)
	return out
}

// aclItem is one item of LargeObject.ACL.
type aclItem struct {
	Grantee, Privilege string
	Grantable          bool
}

func parseACL(s string) ([]aclItem, error) {
	var raw [][]any
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("read privileges %s: %w", s, err)
	}
	out := make([]aclItem, 0, len(raw))
	for _, r := range raw {
		if len(r) != 3 {
			return nil, fmt.Errorf("read privileges %s: an item is not [grantee, privilege, grantable]", s)
		}
		grantee, _ := r[0].(string)
		priv, _ := r[1].(string)
		grantable, _ := r[2].(bool)
		out = append(out, aclItem{grantee, priv, grantable})
	}
	return out, nil
}

func granteeSQL(name string) string {
	if name == "PUBLIC" {
		return "PUBLIC"
	}
	return Ident(name)
}
