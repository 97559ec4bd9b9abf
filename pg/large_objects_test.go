package pg

import (
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
)

// The content hash computed from bytes in order is the server's
// (loHashSQL): md5 of the content up to a piece, else md5 of the pieces'
// hex md5s; written in any chunking.
func TestContentHasher(t *testing.T) {
	md5hex := func(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }
	data := make([]byte, 2*LargeObjectHashPiece+12345)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	for _, size := range []int{0, 1, LargeObjectHashPiece, LargeObjectHashPiece + 1, len(data)} {
		b := data[:size]
		want := md5hex(b)
		if size > LargeObjectHashPiece {
			var hexes strings.Builder
			for off := 0; off < size; off += LargeObjectHashPiece {
				hexes.WriteString(md5hex(b[off:min(off+LargeObjectHashPiece, size)]))
			}
			want = md5hex([]byte(hexes.String()))
		}
		for _, chunk := range []int{1 << 20, 3333333} {
			h := newContentHasher()
			for off := 0; off < size; off += chunk {
				h.Write(b[off:min(off+chunk, size)])
			}
			if got := h.Sum(); got != want {
				t.Errorf("size %d in chunks of %d: %s, want %s", size, chunk, got, want)
			}
		}
	}
}

func TestLargeObjectsDigestRoundTrip(t *testing.T) {
	g := newDigester(12)
	g.add(LargeObject{OID: 16385, Size: 3, Owner: "app", ACL: `[["app","SELECT",false]]`, Hash: "acbd18db4cc2f85cedef654fccc4a4d8"})
	d := g.digest()
	back, err := ParseLargeObjectsDigest(d.String())
	if err != nil || back != d || d.Count != 1 || d.Bytes != 3 || d.Content == "" || d.Writes != 12 {
		t.Fatalf("%s read back as %+v (%v)", d, back, err)
	}
	g = newDigester(-1)
	g.add(LargeObject{OID: 1, Size: 3}) // not hashed: a quick copy's
	if d := g.digest(); d.Content != "" || !strings.Contains(d.String(), "content=-") {
		t.Errorf("unhashed digest %s", d)
	}
	for _, bad := range []string{"", "count=1", "count=1 bytes=2 shape=zz content=- writes=1", d.String() + " extra=1"} {
		if _, err := ParseLargeObjectsDigest(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if ch := DigestChange(LargeObjectsDigest{Count: 1, Bytes: 3, Shape: "a", Writes: 5}, LargeObjectsDigest{Count: 1, Bytes: 3, Shape: "a", Writes: 4}); !ch.Changed || !ch.WritesOnly {
		t.Errorf("writes only: %+v", ch)
	}
	if ch := DigestChange(LargeObjectsDigest{Count: 2, Bytes: 3, Shape: "b", Writes: 5}, LargeObjectsDigest{Count: 1, Bytes: 3, Shape: "a", Writes: 4}); !ch.Changed || ch.WritesOnly {
		t.Errorf("one more: %+v", ch)
	}
}

// What a copy writes is no read: a statement sent outside an operation
// would be journaled as one no plan showed.
func TestLargeObjectWritesAreNotReads(t *testing.T) {
	for _, s := range []Stmt{loUnlinkStmt(nil), loCreateManyStmt(nil, nil), loCreateStmt(nil, nil), loPutStmt(nil, nil, nil)} {
		if IsRead(s.SQL) {
			t.Errorf("%s reads as a read", s.SQL)
		}
	}
	for _, sql := range []string{loListSQL, loListOIDsSQL, loHashSQL, loWritesSQL, loGetStmt(nil, nil, nil).SQL, loGetManyStmt(nil).SQL} {
		if !IsRead(sql) {
			t.Errorf("%s does not read as a read", sql)
		}
	}
	if got := Literal(loBytes(make([]byte, 1<<20))); got != "'<1.0 MB of content>'" {
		t.Errorf("a chunk renders as %s", got)
	}
}

func TestRefreshOrder(t *testing.T) {
	views := map[uint32]*Matview{1: {Rel: Rel{"public", "c"}}, 2: {Rel: Rel{"public", "a"}}, 3: {Rel: Rel{"public", "b"}}, 4: {Rel: Rel{"x", "d"}}}
	// a reads c, c reads b: b, c, a; d alone (by name, after public's first ready one).
	got := refreshOrder(views, []uint32{1, 2, 3, 4}, map[uint32][]uint32{2: {1}, 1: {3}})
	var names []string
	for _, v := range got {
		names = append(names, v.Rel.Name)
	}
	if strings.Join(names, " ") != "b c a d" {
		t.Errorf("refresh order %v, want b c a d", names)
	}
}
