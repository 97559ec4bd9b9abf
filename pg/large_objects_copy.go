package pg

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The copy of blue's large objects to green. Blue is read in one snapshot
// (a read-only repeatable-read transaction, as pg_dump reads it), a page of
// objects at a time in OID order beside green's; objects of the same size
// on both sides are compared by their content hash, computed on each
// server; those missing or different on green are created there with the
// same OID, owner, privileges and comment, their content sent a chunk at a
// time; those on green and not on blue are removed. The program never
// holds more than a few chunks of content: a large object may be 4 TB.

// DefaultLargeObjectChunk is how much content one read of blue and one
// write of green carry: the chunk a larger object is copied in, and the
// most several small ones are copied together in.
const DefaultLargeObjectChunk = 1 << 20

// CopyLargeObjectsParams make green's large objects those of blue.
type CopyLargeObjectsParams struct {
	// ChunkBytes: DefaultLargeObjectChunk when 0.
	ChunkBytes int
	// Progress hears of the copy after each page of objects and each chunk
	// of an object copied in chunks.
	Progress func(LargeObjectsProgress)
}

func (p CopyLargeObjectsParams) chunk() int64 {
	if p.ChunkBytes > 0 {
		return int64(p.ChunkBytes)
	}
	return DefaultLargeObjectChunk
}

// LargeObjectsProgress is how far a copy is.
type LargeObjectsProgress struct {
	// Objects of blue's Total were read so far.
	Objects, Total int64
	// Compared are the objects of equal size whose contents were hashed on
	// both sides, ComparedBytes their size.
	Compared, ComparedBytes int64
	// Copied objects were created on green, CopiedBytes their content.
	Copied, CopiedBytes int64
	// Removed were on green and not on blue; Fixed had their owner,
	// privileges or comment set on green, their content equal.
	Removed, Fixed int64
	// Current is an object being copied in chunks (0: none), CurrentDone
	// of its CurrentSize bytes copied.
	Current                  uint32
	CurrentDone, CurrentSize int64
}

// LargeObjectsCopied is what a copy did, and blue's digest in the snapshot
// it read.
type LargeObjectsCopied struct {
	LargeObjectsProgress
	Digest LargeObjectsDigest
}

// loPair is one OID of the merge: on blue, on green, or both.
type loPair struct{ b, g *LargeObject }

// loCopy is one run of Exec.
type loCopy struct {
	p     CopyLargeObjectsParams
	chunk int64
	b, g  *pgx.Conn
	out   *LargeObjectsCopied
	dg    *digester
}

// Exec copies blue's large objects to green and returns what it did and
// blue's digest. A failure leaves green part way, which the next run
// compares and finishes.
func (p CopyLargeObjectsParams) Exec(ctx context.Context, blue, green *pgxpool.Pool) (LargeObjectsCopied, error) {
	var out LargeObjectsCopied
	gs, err := acquireSessions(ctx, green, 1, func(c *pgx.Conn) error { return loGreenSet.Exec(ctx, c) })
	defer closeSessions(gs)
	if err != nil {
		return out, fmt.Errorf("open a session on green: %w", err)
	}
	bs, err := acquireSessions(ctx, blue, 1, func(c *pgx.Conn) error { return ExecAll(ctx, c, append([]Stmt{loBlueBegin}, loBlueSet...)) })
	defer closeSessions(bs) // closing ends the read-only transaction too
	if err != nil {
		return out, fmt.Errorf("open a snapshot on blue: %w", err)
	}
	c := &loCopy{p: p, chunk: p.chunk(), b: bs[0], g: gs[0], out: &out}
	writes, err := readWrites(ctx, c.b)
	if err != nil {
		return out, err
	}
	c.dg = newDigester(writes)
	if err := c.b.QueryRow(ctx, loCountStmt.SQL).Scan(&out.Total); err != nil {
		return out, loReadError(err)
	}
	bsrc, gsrc := &loStream{q: c.b}, &loStream{q: c.g}
	for {
		pairs, err := mergePage(ctx, bsrc, gsrc)
		if err != nil {
			return out, err
		}
		if len(pairs) == 0 {
			break
		}
		if err := c.page(ctx, pairs); err != nil {
			return out, err
		}
		c.tell()
	}
	if err := loBlueCommit.Exec(ctx, c.b); err != nil {
		return out, err
	}
	out.Digest = c.dg.digest()
	return out, nil
}

func (c *loCopy) tell() {
	if c.p.Progress != nil {
		c.p.Progress(c.out.LargeObjectsProgress)
	}
}

// mergePage takes the next loPage OIDs of the two sides in order. Green's
// stream has always read past the page's last OID (or to its end) when it
// returns, so what the page then creates on green is never read again as
// green's own.
func mergePage(ctx context.Context, bsrc, gsrc *loStream) ([]loPair, error) {
	var out []loPair
	for len(out) < loPage {
		b, err := bsrc.peek(ctx)
		if err != nil {
			return nil, err
		}
		g, err := gsrc.peek(ctx)
		if err != nil {
			return nil, err
		}
		switch {
		case b == nil && g == nil:
			return out, nil
		case g == nil || b != nil && b.OID < g.OID:
			x := *b
			out = append(out, loPair{b: &x})
			bsrc.pop()
		case b == nil || g.OID < b.OID:
			y := *g
			out = append(out, loPair{g: &y})
			gsrc.pop()
		default:
			x, y := *b, *g
			out = append(out, loPair{b: &x, g: &y})
			bsrc.pop()
			gsrc.pop()
		}
	}
	return out, nil
}

// page compares, copies, removes and fixes one page of OIDs, checks what
// it wrote, and adds blue's objects to the digest.
func (c *loCopy) page(ctx context.Context, pairs []loPair) error {
	if err := c.compare(ctx, pairs); err != nil {
		return err
	}
	var unlink []uint32
	var copies []*LargeObject
	var fixes []loPair
	for _, pr := range pairs {
		switch {
		case pr.b == nil:
			unlink = append(unlink, pr.g.OID)
			c.out.Removed++
		case pr.g == nil:
			copies = append(copies, pr.b)
		case pr.b.Size != pr.g.Size || pr.b.Hash != pr.g.Hash:
			unlink = append(unlink, pr.g.OID)
			copies = append(copies, pr.b)
		case !pr.b.sameShape(*pr.g):
			fixes = append(fixes, pr)
		}
	}
	if len(unlink) > 0 {
		if err := loUnlinkStmt(unlink).Exec(ctx, c.g); err != nil {
			return fmt.Errorf("remove large objects on green: %w", err)
		}
	}
	if err := c.copyAll(ctx, copies); err != nil {
		return err
	}
	if err := c.verifyContent(ctx, copies); err != nil {
		return err
	}
	written := make([]*LargeObject, 0, len(copies)+len(fixes))
	for _, o := range copies {
		if err := c.setMetadata(ctx, *o, LargeObject{Owner: o.Owner, ACL: "", DefaultACL: true}); err != nil {
			return err
		}
		written = append(written, o)
	}
	for _, pr := range fixes {
		if err := c.setMetadata(ctx, *pr.b, *pr.g); err != nil {
			return err
		}
		c.out.Fixed++
		written = append(written, pr.b)
	}
	if err := c.verifyShape(ctx, written); err != nil {
		return err
	}
	for _, pr := range pairs {
		if pr.b != nil {
			c.dg.add(*pr.b)
			c.out.Objects++
		}
	}
	return nil
}

// compare hashes the page's objects of equal size on both sides at once.
func (c *loCopy) compare(ctx context.Context, pairs []loPair) error {
	var bs, gs []*LargeObject
	for _, pr := range pairs {
		if pr.b != nil && pr.g != nil && pr.b.Size == pr.g.Size {
			bs, gs = append(bs, pr.b), append(gs, pr.g)
		}
	}
	if len(bs) == 0 {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- hashLargeObjects(ctx, c.g, gs, nil) }()
	err := hashLargeObjects(ctx, c.b, bs, func(n int64) { c.out.ComparedBytes += n })
	if gerr := <-done; gerr != nil && err == nil {
		err = fmt.Errorf("on green: %w", gerr)
	}
	if err != nil {
		return fmt.Errorf("compare large objects: %w", err)
	}
	c.out.Compared += int64(len(bs))
	return nil
}

// copyAll creates objects on green from blue's content: those up to a
// chunk together, owner by owner, up to a chunk at a time; larger ones a
// chunk at a time.
func (c *loCopy) copyAll(ctx context.Context, objs []*LargeObject) error {
	for i := 0; i < len(objs); {
		if objs[i].Size > c.chunk {
			if err := c.copyLarge(ctx, objs[i]); err != nil {
				return err
			}
			i++
			continue
		}
		j, bytes := i, int64(0)
		for j < len(objs) && j-i < loPage && objs[j].Size <= c.chunk && objs[j].Owner == objs[i].Owner && (j == i || bytes+objs[j].Size <= c.chunk) {
			bytes += objs[j].Size
			j++
		}
		if err := c.copySmall(ctx, objs[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// inOwnerTx runs a statement in a transaction on green as the owner, so
// what it creates is the owner's.
func (c *loCopy) inOwnerTx(ctx context.Context, owner string, s Stmt) error {
	err := ExecTx(ctx, c.g, InTx("green", []Stmt{loRoleStmt(owner), s}))
	if err != nil && (IsInsufficientPrivilege(err) || strings.Contains(err.Error(), "does not exist")) {
		return fmt.Errorf("create large objects owned by %s on green: %w; the role must exist on green (roles are cluster-wide: copy them first) and the program's role must be a superuser or a member of it", owner, err)
	}
	return err
}

func (c *loCopy) copySmall(ctx context.Context, objs []*LargeObject) error {
	oids := make([]uint32, len(objs))
	for i, o := range objs {
		oids[i] = o.OID
	}
	rows, err := c.b.Query(ctx, loGetManyStmt(oids).SQL, oids)
	if err != nil {
		return loReadError(err)
	}
	got := make(map[uint32][]byte, len(objs))
	for rows.Next() {
		var oid uint32
		var b []byte
		if err := rows.Scan(&oid, &b); err != nil {
			rows.Close()
			return loReadError(err)
		}
		got[oid] = b
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return loReadError(err)
	}
	data := make(loContents, len(objs))
	for i, o := range objs {
		data[i] = got[o.OID]
		if data[i] == nil {
			data[i] = []byte{} // empty, not NULL: lo_from_bytea(oid, NULL) creates nothing
		}
		if int64(len(data[i])) != o.Size {
			return fmt.Errorf("large object %d: read %d bytes on blue, its size is %d", o.OID, len(data[i]), o.Size)
		}
		h := newContentHasher()
		h.Write(data[i])
		o.Hash = h.Sum()
	}
	if err := c.inOwnerTx(ctx, objs[0].Owner, loCreateManyStmt(oids, data)); err != nil {
		return fmt.Errorf("create large objects %d..%d on green: %w", oids[0], oids[len(oids)-1], err)
	}
	c.out.Copied += int64(len(objs))
	for _, o := range objs {
		c.out.CopiedBytes += o.Size
	}
	return nil
}

// readChunk is one chunk of an object read from blue.
type readChunk struct {
	off int64
	b   []byte
}

// copyLarge copies one object a chunk at a time: a goroutine reads the
// next chunk from blue while green writes the last, with two buffers
// between them, so the program holds a few chunks whatever the size.
func (c *loCopy) copyLarge(ctx context.Context, o *LargeObject) error {
	rctx, cancel := context.WithCancel(ctx)
	free := make(chan []byte, 2)
	free <- make([]byte, 0, c.chunk)
	free <- make([]byte, 0, c.chunk)
	full := make(chan readChunk, 1)
	var rerr error
	go func() {
		defer close(full)
		get := loGetStmt(o.OID, int64(0), int32(0))
		for off := int64(0); off < o.Size; off += c.chunk {
			var b []byte
			select {
			case b = <-free:
			case <-rctx.Done():
				return
			}
			buf := chunkBuf{b: b[:0]}
			n := min(c.chunk, o.Size-off)
			if err := c.b.QueryRow(rctx, get.SQL, o.OID, off, int32(n)).Scan(&buf); err != nil {
				rerr = loReadError(err)
				return
			}
			if int64(len(buf.b)) != n {
				rerr = fmt.Errorf("large object %d: read %d bytes at %d on blue, want %d", o.OID, len(buf.b), off, n)
				return
			}
			select {
			case full <- readChunk{off: off, b: buf.b}:
			case <-rctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel()
		for range full { // let the reader end
		}
	}()
	h := newContentHasher()
	c.out.Current, c.out.CurrentSize, c.out.CurrentDone = o.OID, o.Size, 0
	defer func() { c.out.Current, c.out.CurrentSize, c.out.CurrentDone = 0, 0, 0 }()
	for ch := range full {
		h.Write(ch.b)
		var err error
		switch ch.off {
		case 0:
			err = c.inOwnerTx(ctx, o.Owner, loCreateStmt(o.OID, loBytes(ch.b)))
		case c.chunk:
			err = loPutStmt(o.OID, ch.off, loBytes(ch.b)).Exec(ctx, c.g)
		default:
			// One object of 4 TB is four million chunks: the journal has the
			// first of them and the progress lines, not every one.
			err = loPutStmt(o.OID, ch.off, loBytes(ch.b)).Exec(Quiet(ctx), c.g)
		}
		if err != nil {
			return fmt.Errorf("write large object %d at %d on green: %w", o.OID, ch.off, err)
		}
		c.out.CurrentDone += int64(len(ch.b))
		free <- ch.b
		c.tell()
	}
	if rerr != nil {
		return rerr
	}
	if c.out.CurrentDone != o.Size {
		return fmt.Errorf("large object %d: copied %d of %d bytes", o.OID, c.out.CurrentDone, o.Size)
	}
	o.Hash = h.Sum()
	c.out.Copied++
	c.out.CopiedBytes += o.Size
	return nil
}

// verifyContent hashes what was written on green and compares it with the
// hash of what was read from blue.
func (c *loCopy) verifyContent(ctx context.Context, copies []*LargeObject) error {
	if len(copies) == 0 {
		return nil
	}
	gs := make([]*LargeObject, len(copies))
	for i, o := range copies {
		gs[i] = &LargeObject{OID: o.OID, Size: o.Size}
	}
	if err := hashLargeObjects(ctx, c.g, gs, nil); err != nil {
		return fmt.Errorf("check the large objects copied, on green: %w", err)
	}
	for i, o := range copies {
		if gs[i].Hash != o.Hash {
			return fmt.Errorf("large object %d differs on green after its copy (md5 %s on green, %s read from blue)", o.OID, gs[i].Hash, o.Hash)
		}
	}
	return nil
}

// setMetadata makes green's object b's owner, privileges and comment what
// b has on blue; g is what green has (for an object just created: its
// owner's defaults, no comment).
func (c *loCopy) setMetadata(ctx context.Context, b, g LargeObject) error {
	oid := strconv.FormatUint(uint64(b.OID), 10)
	var stmts []Stmt
	if b.Owner != g.Owner {
		stmts = append(stmts, loOwnerStmt(oid, b.Owner))
	}
	if b.ACL != g.ACL && !(g.ACL == "" && b.DefaultACL) {
		bi, err := parseACL(b.ACL)
		if err != nil {
			return err
		}
		gi := []aclItem{{Grantee: b.Owner}}
		if g.ACL != "" {
			if gi, err = parseACL(g.ACL); err != nil {
				return err
			}
		}
		seen := map[string]bool{"PUBLIC": true}
		from := []string{"PUBLIC"}
		for _, it := range append(gi, append(bi, aclItem{Grantee: b.Owner})...) {
			if !seen[it.Grantee] {
				seen[it.Grantee] = true
				from = append(from, granteeSQL(it.Grantee))
			}
		}
		stmts = append(stmts, loRevokeStmt(oid, from))
		type key struct {
			grantee   string
			grantable bool
		}
		var order []key
		privs := map[key][]string{}
		for _, it := range bi {
			k := key{it.Grantee, it.Grantable}
			if privs[k] == nil {
				order = append(order, k)
			}
			privs[k] = append(privs[k], it.Privilege)
		}
		for _, k := range order {
			stmts = append(stmts, loGrantStmt(oid, strings.Join(privs[k], ", "), granteeSQL(k.grantee), k.grantable))
		}
	}
	if b.Comment != g.Comment {
		stmts = append(stmts, loCommentStmt(oid, b.Comment))
	}
	for _, s := range stmts {
		if err := s.Exec(ctx, c.g); err != nil {
			return fmt.Errorf("%s on green: %w", s.SQL, err)
		}
	}
	return nil
}

// verifyShape reads back the objects written and compares them with blue's.
func (c *loCopy) verifyShape(ctx context.Context, objs []*LargeObject) error {
	if len(objs) == 0 {
		return nil
	}
	oids := make([]uint32, len(objs))
	for i, o := range objs {
		oids[i] = o.OID
	}
	got, err := readLargeObjects(ctx, c.g, loListOIDsSQL, oids)
	if err != nil {
		return fmt.Errorf("read back the large objects written, on green: %w", err)
	}
	byOID := make(map[uint32]LargeObject, len(got))
	for _, g := range got {
		byOID[g.OID] = g
	}
	for _, b := range objs {
		g, ok := byOID[b.OID]
		switch {
		case !ok:
			return fmt.Errorf("large object %d is not on green after its copy", b.OID)
		case !b.sameShape(g):
			return fmt.Errorf("large object %d differs on green after its copy: size %d, owner %s, privileges %s, comment %q on green; %d, %s, %s, %q on blue",
				b.OID, g.Size, g.Owner, g.ACL, g.Comment, b.Size, b.Owner, b.ACL, b.Comment)
		}
	}
	return nil
}
