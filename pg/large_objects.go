package pg

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Large objects: logical replication carries none (they live in the
// catalogs pg_largeobject_metadata and pg_largeobject, which are never
// published). pgbluegreen reads them on each server in OID order, a page at
// a time, and compares them by what they are (OID, size, owner, privileges,
// comment) and by a hash of their content computed on each server, so no
// content crosses the network to be compared. What reading needs: the
// role may open every large object (a superuser, or SELECT granted on
// each); pg_largeobject itself, readable by superusers alone, is never read.

// LargeObjectHashPiece is the piece a large object's content hash is made
// of: an object up to this size hashes as the md5 of its content (what
// md5(lo_get(oid)) says); a larger one as the md5 of its pieces' md5s (hex,
// in order), so no server ever holds more than one piece of it in memory.
const LargeObjectHashPiece = 8 << 20

// LargeObject is one large object as a server holds it.
type LargeObject struct {
	OID  uint32
	Size int64
	// Owner is the owning role's name.
	Owner string
	// ACL is its privileges, the owner's defaults made explicit (a NULL
	// lomacl reads as acldefault), as sorted JSON [grantee, privilege,
	// grantable] items: two servers compare it as text. The grantor is
	// left out: a superuser's GRANT records the owner as grantor, so a
	// privilege granted on blue by another role could never compare equal.
	ACL string
	// Comment is its COMMENT ON LARGE OBJECT, "" when none.
	Comment string
	// DefaultACL: its privileges are the owner's defaults (lomacl NULL).
	DefaultACL bool
	// Hash is its content hash (LargeObjectHashPiece), "" until hashed.
	Hash string
}

// sameShape reports whether two objects agree in all but content.
func (o LargeObject) sameShape(x LargeObject) bool {
	return o.OID == x.OID && o.Size == x.Size && o.Owner == x.Owner && o.ACL == x.ACL && o.Comment == x.Comment
}

// loColumns are the columns of a large object listing, $1..: see loListSQL.
const loColumns = `
SELECT s.oid, lo_lseek64(s.fd, 0, 2), lo_close(s.fd), s.owner, s.acl, s.dflt, s.comment
FROM (SELECT p.*, lo_open(p.oid, 262144) AS fd
      FROM (SELECT m.oid, pg_get_userbyid(m.lomowner)::text AS owner, m.lomacl IS NULL AS dflt,
                   coalesce((SELECT json_agg(e.x ORDER BY e.x::text COLLATE "C")
                             FROM (SELECT json_build_array(CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END,
                                                           a.privilege_type, a.is_grantable) AS x
                                   FROM aclexplode(coalesce(m.lomacl, acldefault('L', m.lomowner))) a) e)::text, '[]') AS acl,
                   coalesce(obj_description(m.oid, 'pg_largeobject'), '') AS comment
            FROM pg_largeobject_metadata m
            WHERE %s) p) s`

// loListSQL reads a page of large objects after OID $1, at most $2 of
// them: each opened for reading (262144 is INV_READ), its size read at its
// end and closed again in the same row, so a page holds at most $2 open.
// Columns: oid, size, (lo_close), owner, acl, default acl, comment.
var loListSQL = fmt.Sprintf(loColumns, "m.oid > $1 ORDER BY m.oid LIMIT $2")

// loListOIDsSQL reads the large objects of a list of OIDs ($1).
var loListOIDsSQL = fmt.Sprintf(loColumns, "m.oid = ANY($1::oid[])")

// loHashSQL hashes large objects ($1, of sizes $2) on the server that holds
// them, as LargeObjectHashPiece says ($3). Columns: oid, hash.
const loHashSQL = `
SELECT u.o, CASE WHEN u.s <= $3 THEN md5(lo_get(u.o))
            ELSE (SELECT md5(string_agg(md5(lo_get(u.o, p, $3::int)), '' ORDER BY p))
                  FROM generate_series(0::bigint, u.s - 1, $3::bigint) p) END
FROM unnest($1::oid[], $2::bigint[]) AS u(o, s)`

// loWritesSQL counts the rows ever written to the two catalogs of large
// objects in this database, as the statistics count them: any create,
// write, truncate, unlink, owner or privilege change adds to it. A
// session's counts reach the statistics when it next goes idle, up to
// 10 s later when it reported less than a second before.
const loWritesSQL = `SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_all_tables
WHERE relid IN ('pg_catalog.pg_largeobject'::regclass, 'pg_catalog.pg_largeobject_metadata'::regclass)`

// loPage is how many large objects a listing reads at a time.
const loPage = 1000

// LargeObjectReads are the reads LargeObjectsShape makes, for plans.
func LargeObjectReads(on string) []Stmt {
	return []Stmt{
		{On: on, SQL: loWritesSQL},
		{On: on, SQL: loListSQL, Args: []any{Later("the last OID read, 0 first"), loPage}, Note: "a page at a time, in OID order"},
	}
}

// readLargeObjects runs a listing: loListSQL's page, or loListOIDsSQL's
// objects. The page comes back in OID order.
func readLargeObjects(ctx context.Context, q Querier, sql string, args ...any) ([]LargeObject, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, loReadError(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LargeObject, error) {
		var o LargeObject
		var closed int32
		err := r.Scan(&o.OID, &o.Size, &closed, &o.Owner, &o.ACL, &o.DefaultACL, &o.Comment)
		return o, err
	})
	if err != nil {
		return nil, loReadError(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].OID < out[j].OID })
	return out, nil
}

func loReadError(err error) error {
	if IsInsufficientPrivilege(err) {
		return fmt.Errorf("read the large objects: %w; the role must be a superuser, or be granted SELECT on each large object (GRANT SELECT ON LARGE OBJECT ... TO it)", err)
	}
	return fmt.Errorf("read the large objects: %w", err)
}

// loStream reads one server's large objects in OID order, a page at a time.
type loStream struct {
	q     Querier
	after uint32
	buf   []LargeObject
	end   bool
}

// peek returns the next object, or nil at the end.
func (s *loStream) peek(ctx context.Context) (*LargeObject, error) {
	if len(s.buf) == 0 && !s.end {
		page, err := readLargeObjects(ctx, s.q, loListSQL, s.after, loPage)
		if err != nil {
			return nil, err
		}
		s.buf, s.end = page, len(page) < loPage
		if len(page) > 0 {
			s.after = page[len(page)-1].OID
		}
	}
	if len(s.buf) == 0 {
		return nil, nil
	}
	return &s.buf[0], nil
}

func (s *loStream) pop() { s.buf = s.buf[1:] }

// hashLargeObjects hashes objects on the server q reaches (loHashSQL), in
// batches of at most loPage objects and about LargeObjectHashPiece * 32
// bytes, and sets their Hash. onBatch hears of each batch's bytes.
func hashLargeObjects(ctx context.Context, q Querier, objs []*LargeObject, onBatch func(bytes int64)) error {
	for len(objs) > 0 {
		n, bytes := 0, int64(0)
		for n < len(objs) && n < loPage && (n == 0 || bytes+objs[n].Size <= 32*LargeObjectHashPiece) {
			bytes += objs[n].Size
			n++
		}
		batch := objs[:n]
		objs = objs[n:]
		oids, sizes := make([]uint32, n), make([]int64, n)
		byOID := make(map[uint32]*LargeObject, n)
		for i, o := range batch {
			oids[i], sizes[i] = o.OID, o.Size
			byOID[o.OID] = o
		}
		rows, err := q.Query(ctx, loHashSQL, oids, sizes, int64(LargeObjectHashPiece))
		if err != nil {
			return loReadError(err)
		}
		for rows.Next() {
			var oid uint32
			var h string
			if err := rows.Scan(&oid, &h); err != nil {
				rows.Close()
				return loReadError(err)
			}
			if o := byOID[oid]; o != nil {
				o.Hash = h
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return loReadError(err)
		}
		if onBatch != nil {
			onBatch(bytes)
		}
	}
	return nil
}

// contentHasher computes a large object's content hash from its bytes in
// order, as loHashSQL computes it on a server.
type contentHasher struct {
	whole  hash.Hash // md5 of everything, while it fits one piece
	piece  hash.Hash // md5 of the current piece
	pieces hash.Hash // md5 of the pieces' hex md5s
	inPart int
	size   int64
}

func newContentHasher() *contentHasher {
	return &contentHasher{whole: md5.New(), piece: md5.New(), pieces: md5.New()}
}

func (h *contentHasher) Write(b []byte) {
	h.size += int64(len(b))
	if h.size <= LargeObjectHashPiece {
		h.whole.Write(b)
	}
	for len(b) > 0 {
		n := min(len(b), LargeObjectHashPiece-h.inPart)
		h.piece.Write(b[:n])
		h.inPart += n
		b = b[n:]
		if h.inPart == LargeObjectHashPiece {
			h.endPiece()
		}
	}
}

func (h *contentHasher) endPiece() {
	h.pieces.Write([]byte(hex.EncodeToString(h.piece.Sum(nil))))
	h.piece.Reset()
	h.inPart = 0
}

// Sum is the content hash of what was written.
func (h *contentHasher) Sum() string {
	if h.size <= LargeObjectHashPiece {
		return hex.EncodeToString(h.whole.Sum(nil))
	}
	if h.inPart > 0 {
		h.endPiece()
	}
	return hex.EncodeToString(h.pieces.Sum(nil))
}

// LargeObjectsDigest sums up a database's large objects, so a later
// reading can tell whether they changed: how many, their bytes, a hash of
// what they are (OID, size, owner, privileges, comment), a hash of their
// contents when it was computed, and the statistics' count of rows
// written to their catalogs.
type LargeObjectsDigest struct {
	Count, Bytes int64
	// Shape is a sha256 (32 hex digits of it) over every object's OID,
	// size, owner, privileges and comment, in OID order.
	Shape string
	// Content is a sha256 (32 hex digits) over every object's OID and
	// content hash, in OID order; "" when not computed (a cheap reading).
	Content string
	// Writes is loWritesSQL's count when the reading began; -1 unknown.
	Writes int64
}

// String is the digest as a value records it:
// count=1 bytes=307200 shape=… content=… writes=12.
func (d LargeObjectsDigest) String() string {
	c := d.Content
	if c == "" {
		c = "-"
	}
	return fmt.Sprintf("count=%d bytes=%d shape=%s content=%s writes=%d", d.Count, d.Bytes, d.Shape, c, d.Writes)
}

// Summary is the digest for people: "3 large objects, 1.2 MB".
func (d LargeObjectsDigest) Summary() string {
	if d.Count == 1 {
		return "1 large object, " + Bytes(d.Bytes)
	}
	return fmt.Sprintf("%d large objects, %s", d.Count, Bytes(d.Bytes))
}

// ParseLargeObjectsDigest reads a digest String wrote.
func ParseLargeObjectsDigest(s string) (LargeObjectsDigest, error) {
	var d LargeObjectsDigest
	seen := map[string]bool{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || seen[k] {
			return d, fmt.Errorf("%q: want count=N bytes=N shape=HEX content=HEX|- writes=N", s)
		}
		seen[k] = true
		var err error
		switch k {
		case "count":
			d.Count, err = strconv.ParseInt(v, 10, 64)
		case "bytes":
			d.Bytes, err = strconv.ParseInt(v, 10, 64)
		case "writes":
			d.Writes, err = strconv.ParseInt(v, 10, 64)
		case "shape":
			d.Shape, err = hexDigest(v)
		case "content":
			if v != "-" {
				d.Content, err = hexDigest(v)
			}
		default:
			err = fmt.Errorf("unknown field %s", k)
		}
		if err != nil {
			return d, fmt.Errorf("%q: %v", s, err)
		}
	}
	if len(seen) != 5 || d.Count < 0 || d.Bytes < 0 {
		return d, fmt.Errorf("%q: want count=N bytes=N shape=HEX content=HEX|- writes=N", s)
	}
	return d, nil
}

func hexDigest(v string) (string, error) {
	if _, err := hex.DecodeString(v); err != nil || len(v) != 32 {
		return "", errors.New("a digest is 32 hexadecimal digits")
	}
	return v, nil
}

// digester builds a LargeObjectsDigest from objects added in OID order.
type digester struct {
	d              LargeObjectsDigest
	shape, content hash.Hash
	hashed         bool
}

func newDigester(writes int64) *digester {
	return &digester{d: LargeObjectsDigest{Writes: writes}, shape: sha256.New(), content: sha256.New(), hashed: true}
}

func (g *digester) add(o LargeObject) {
	g.d.Count++
	g.d.Bytes += o.Size
	fmt.Fprintf(g.shape, "%d %d %q %q %q\n", o.OID, o.Size, o.Owner, o.ACL, o.Comment)
	if o.Hash == "" {
		g.hashed = false
	}
	fmt.Fprintf(g.content, "%d %s\n", o.OID, o.Hash)
}

func (g *digester) digest() LargeObjectsDigest {
	d := g.d
	d.Shape = hex.EncodeToString(g.shape.Sum(nil))[:32]
	if g.hashed {
		d.Content = hex.EncodeToString(g.content.Sum(nil))[:32]
	}
	return d
}

// readWrites reads loWritesSQL.
func readWrites(ctx context.Context, q Querier) (int64, error) {
	var n int64
	if err := q.QueryRow(ctx, loWritesSQL).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the statistics of pg_largeobject: %w", err)
	}
	return n, nil
}

// LargeObjectsShape reads a database's large objects without their
// contents: count, bytes, shape and writes (Content ""). Its cost is one
// catalog row and one seek per object: no content is read.
func LargeObjectsShape(ctx context.Context, q Querier) (LargeObjectsDigest, error) {
	writes, err := readWrites(ctx, q)
	if err != nil {
		return LargeObjectsDigest{}, err
	}
	g := newDigester(writes)
	s := &loStream{q: q}
	for {
		o, err := s.peek(ctx)
		if err != nil {
			return LargeObjectsDigest{}, err
		}
		if o == nil {
			return g.digest(), nil
		}
		g.add(*o)
		s.pop()
	}
}

// LargeObjectsChange is what LargeObjectsChanged found.
type LargeObjectsChange struct {
	Changed bool
	// Why says what differs from the recorded digest ("" when nothing).
	Why string
	// Now is the reading (Content "").
	Now LargeObjectsDigest
	// WritesOnly: only the statistics' count of writes moved: an object was
	// rewritten in place (same size), or the statistics were reset. Which
	// object, only a comparison of contents (CopyLargeObjectsParams) can
	// tell.
	WritesOnly bool
}

// LargeObjectsChanged tells cheaply whether a database's large objects
// changed since a recorded digest (one CopyLargeObjectsParams.Exec made):
// it reads what LargeObjectsShape reads, and no content. It sees every
// object created, removed, resized, given to another owner, granted or
// commented since, and, through the statistics, every write; a write
// committed in the last seconds may not have reached the statistics yet
// (loWritesSQL), so a rewrite in place of the same size within them is the
// one change it can miss.
func LargeObjectsChanged(ctx context.Context, q Querier, since LargeObjectsDigest) (LargeObjectsChange, error) {
	now, err := LargeObjectsShape(ctx, q)
	if err != nil {
		return LargeObjectsChange{}, err
	}
	return DigestChange(now, since), nil
}

// DigestChange is LargeObjectsChanged's judgment of a reading made already
// (now, by LargeObjectsShape) against a recorded digest.
func DigestChange(now, since LargeObjectsDigest) LargeObjectsChange {
	out := LargeObjectsChange{Now: now}
	switch {
	case now.Count != since.Count || now.Bytes != since.Bytes:
		out.Why = fmt.Sprintf("%s then, %s now", since.Summary(), now.Summary())
	case now.Shape != since.Shape:
		out.Why = fmt.Sprintf("%s as then, but an object's OID, size, owner, privileges or comment changed", now.Summary())
	case now.Writes != since.Writes:
		out.Why = fmt.Sprintf("%s as then, but the statistics count %d rows of their catalogs written since (%d then, %d now): a rewrite in place of the same size, a write the statistics heard of late, or statistics reset", now.Summary(), now.Writes-since.Writes, since.Writes, now.Writes)
		out.WritesOnly = true
	}
	out.Changed = out.Why != ""
	return out
}
