package state

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Mask replaces every secret Redact finds.
const Mask = "********"

// Redact removes passwords from s, keeping the rest readable (password=********). It is the one
// function used by the journal, the log pane, the plan and every error message, and it knows
// these forms:
//
//   - libpq conninfo: password=secret, password = 'sec ret' with \' and \\ escapes, any case of
//     the key and any key ending in "password" (sslpassword, PGPASSWORD=...);
//   - URLs of any scheme: the password of scheme://user:password@host, and a
//     ?password=... or &password=... query parameter;
//   - SQL: the string literal after PASSWORD (so also ENCRYPTED PASSWORD), in any of the forms
//     '...' with doubled quotes, E'...' with backslash escapes, U&'...' and $tag$...$tag$;
//   - JSON: the string value of a member whose key ends in "password" ({"password":"..."});
//   - SQL: the literal after CONNECTION (CREATE/ALTER SUBSCRIPTION) is decoded, redacted as a
//     conninfo or URL, and quoted again the same way, so host, port, user and dbname stay
//     visible and only the password goes. A literal that cannot be decoded safely (U&'...', an
//     unterminated one) is replaced whole.
//
// Where a form is ambiguous Redact takes away more rather than less: an unquoted conninfo
// value runs to the next whitespace, an unterminated quoted one to the end of s, and the
// password of a URL runs to the last '@' before the next whitespace. Plain '...' literals are
// read with standard_conforming_strings on (PostgreSQL's default since 9.1), where a backslash
// is an ordinary character. A conninfo inside another SQL literal than CONNECTION's (dblink)
// is handled when its password is unquoted or quoted with doubled quotes.
func Redact(s string) string {
	if !mayHoldSecret(s) {
		return s
	}
	var b strings.Builder
	last := 0 // s[last:i] is still to be copied to b
	i := 0
	for i < len(s) {
		var r span
		var skip int
		switch c := s[i] | 0x20; {
		case s[i] == ':' && strings.HasPrefix(s[i:], "://"):
			r, skip = urlPassword(s, i+3), 3
		case c == 'p' && hasPrefixFold(s[i:], "password"):
			r, skip = passwordValue(s, i), len("password")
		case c == 'c' && hasPrefixFold(s[i:], "connection"):
			r, skip = connectionLiteral(s, i+len("connection")), len("connection")
		default:
			i++
			continue
		}
		if !r.ok {
			i += skip
			continue
		}
		b.WriteString(s[last:r.from])
		b.WriteString(r.with)
		last, i = r.to, r.to
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// RedactError wraps err so that its message is redacted; errors.Is and errors.As still see
// err through Unwrap. A nil err stays nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	return &redactedError{err: err}
}

type redactedError struct{ err error }

// Error is the wrapped error's message, redacted.
func (e *redactedError) Error() string { return Redact(e.err.Error()) }

// Unwrap gives errors.Is and errors.As the original error.
func (e *redactedError) Unwrap() error { return e.err }

// span says that s[from:to] is to be replaced by with.
type span struct {
	from, to int
	with     string
	ok       bool
}

func replace(from, to int, with string) span {
	if to <= from { // nothing secret in an empty value
		return span{}
	}
	return span{from: from, to: to, with: with, ok: true}
}

// mayHoldSecret is the fast path: most log lines contain none of the words Redact acts on.
// "connection" is among them because a CONNECTION literal's escapes (E-strings) can spell "password".
func mayHoldSecret(s string) bool {
	if strings.Contains(s, "://") {
		return true
	}
	for i := 0; i < len(s); i++ {
		switch s[i] | 0x20 {
		case 'p':
			if hasPrefixFold(s[i:], "password") {
				return true
			}
		case 'c':
			if hasPrefixFold(s[i:], "connection") {
				return true
			}
		}
	}
	return false
}

// hasPrefixFold reports whether s starts with lower, ignoring ASCII case; lower is lower case.
func hasPrefixFold(s, lower string) bool {
	if len(s) < len(lower) {
		return false
	}
	for i := 0; i < len(lower); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// isSpace is libpq's isspace() in the C locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func skipSpace(s string, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

func isIdent(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// urlPassword finds the password of a URL whose authority starts at a (just after "://").
// libpq itself stops at the first '@' or '/', but a raw '@' or '/' in a password is a common
// mistake that must not leak, so the last '@' before whitespace is taken.
func urlPassword(s string, a int) span {
	e := a
	for e < len(s) && !isSpace(s[e]) {
		e++
	}
	at := strings.LastIndexByte(s[a:e], '@')
	if at < 0 {
		return span{}
	}
	at += a
	colon := strings.IndexByte(s[a:at], ':')
	if colon < 0 {
		return span{}
	}
	return replace(a+colon+1, at, Mask)
}

// passwordValue handles the word "password" at i: a conninfo or query parameter when '='
// follows, an SQL literal when one follows.
func passwordValue(s string, i int) span {
	j := i + len("password")
	k := skipSpace(s, j)
	if k < len(s) && s[k] == '=' {
		ks := i
		for ks > 0 && isIdent(s[ks-1]) {
			ks--
		}
		if k == j && ks > 0 && (s[ks-1] == '?' || s[ks-1] == '&') {
			return queryValue(s, k+1)
		}
		return conninfoValue(s, skipSpace(s, k+1))
	}
	if lit, ok := sqlLiteral(s, k); ok {
		return replace(lit.from, lit.to, Mask)
	}
	if j < len(s) && s[j] == '"' {
		return jsonValue(s, j+1)
	}
	return span{}
}

// jsonValue handles a JSON member whose key ends in password and whose closing quote is just
// before k, such as a Secrets Manager secret {"username":"u","password":"p"}: the string
// value, if there is one, is redacted.
func jsonValue(s string, k int) span {
	k = skipSpace(s, k)
	if k >= len(s) || s[k] != ':' {
		return span{}
	}
	v := skipSpace(s, k+1)
	if v >= len(s) || s[v] != '"' {
		return span{}
	}
	for e := v + 1; e < len(s); e++ {
		switch s[e] {
		case '\\':
			e++
		case '"':
			return replace(v+1, e, Mask)
		}
	}
	return replace(v+1, len(s), Mask)
}

// queryValue is a URL query parameter's value starting at v.
func queryValue(s string, v int) span {
	e := v
	for e < len(s) && s[e] != '&' && s[e] != '#' && !isSpace(s[e]) {
		e++
	}
	return replace(v, e, Mask)
}

// conninfoValue is a libpq conninfo value starting at v, read as libpq reads it (backslash
// escapes in quoted and unquoted values), with two additions that only ever take more: a
// doubled quote inside a quoted value does not end it, and a value opened with two quotes is taken
// to be a conninfo quoted again inside an SQL literal, closed by the next two quotes.
func conninfoValue(s string, v int) span {
	if v >= len(s) {
		return span{}
	}
	if s[v] != '\'' {
		k := v
		for k < len(s) && !isSpace(s[k]) {
			if s[k] == '\\' {
				k++
			}
			k++
		}
		return replace(v, min(k, len(s)), Mask)
	}
	if v+2 < len(s) && s[v+1] == '\'' && s[v+2] != '\'' && !isSpace(s[v+2]) {
		k := v + 2
		for k < len(s) {
			switch {
			case s[k] == '\\':
				k++
				if strings.HasPrefix(s[k:], "''") {
					k += 2
				} else {
					k++
				}
			case strings.HasPrefix(s[k:], "''"):
				return replace(v+2, k, Mask)
			default:
				k++
			}
		}
		return replace(v+2, len(s), Mask)
	}
	k := v + 1
	for k < len(s) {
		switch {
		case s[k] == '\\':
			k += 2
		case s[k] == '\'' && k+1 < len(s) && s[k+1] == '\'':
			k += 2
		case s[k] == '\'':
			return replace(v+1, k, Mask)
		default:
			k++
		}
	}
	return replace(v+1, len(s), Mask)
}

// literal is an SQL string literal: its content is s[from:to].
type literal struct {
	kind       byte   // '\'' standard, 'E' escape string, 'U' Unicode escapes, '$' dollar-quoted
	from, to   int    // the content
	end        int    // just after the closing delimiter
	terminated bool   // false: the content runs to the end of s
	tag        string // the delimiter of a dollar-quoted literal, "$tag$"
}

// sqlLiteral reads the SQL string literal starting at k, if one does.
func sqlLiteral(s string, k int) (literal, bool) {
	if k >= len(s) {
		return literal{}, false
	}
	switch {
	case s[k] == '\'':
		return quotedLiteral(s, '\'', k+1, false), true
	case s[k]|0x20 == 'e' && k+1 < len(s) && s[k+1] == '\'':
		return quotedLiteral(s, 'E', k+2, true), true
	case s[k]|0x20 == 'u' && strings.HasPrefix(s[k+1:], "&'"):
		return quotedLiteral(s, 'U', k+3, false), true
	case s[k] == '$':
		t := k + 1
		for t < len(s) && isIdent(s[t]) && !(t == k+1 && '0' <= s[t] && s[t] <= '9') {
			t++
		}
		if t >= len(s) || s[t] != '$' {
			return literal{}, false
		}
		tag := s[k : t+1]
		lit := literal{kind: '$', from: t + 1, tag: tag}
		if n := strings.Index(s[lit.from:], tag); n >= 0 {
			lit.to, lit.end, lit.terminated = lit.from+n, lit.from+n+len(tag), true
		} else {
			lit.to, lit.end = len(s), len(s)
		}
		return lit, true
	}
	return literal{}, false
}

// quotedLiteral reads a '...' literal whose content starts at from; backslashes escape only
// in E'...' strings.
func quotedLiteral(s string, kind byte, from int, backslash bool) literal {
	k := from
	for k < len(s) {
		switch {
		case backslash && s[k] == '\\':
			k += 2
		case s[k] == '\'' && k+1 < len(s) && s[k+1] == '\'':
			k += 2
		case s[k] == '\'':
			return literal{kind: kind, from: from, to: k, end: k + 1, terminated: true}
		default:
			k++
		}
	}
	return literal{kind: kind, from: from, to: len(s), end: len(s)}
}

// connectionLiteral handles CONNECTION followed by a literal at or after j: the literal is
// decoded, redacted and quoted again in the same form.
func connectionLiteral(s string, j int) span {
	lit, ok := sqlLiteral(s, skipSpace(s, j))
	if !ok {
		return span{}
	}
	raw := s[lit.from:lit.to]
	if !lit.terminated || lit.kind == 'U' {
		return replace(lit.from, lit.to, Mask)
	}
	var decoded string
	switch lit.kind {
	case '\'':
		decoded = strings.ReplaceAll(raw, "''", "'")
	case 'E':
		decoded = decodeEscapeString(raw)
	default: // '$'
		decoded = raw
	}
	red := Redact(decoded)
	if red == decoded {
		// Nothing to hide; skip the literal so nothing inside it is read again.
		return span{from: lit.from, to: lit.to, with: raw, ok: true}
	}
	var quoted string
	switch lit.kind {
	case '\'':
		quoted = strings.ReplaceAll(red, "'", "''")
	case 'E':
		quoted = encodeEscapeString(red)
	default:
		quoted = red
		if strings.Contains(red, lit.tag) {
			quoted = Mask
		}
	}
	return span{from: lit.from, to: lit.to, with: quoted, ok: true}
}

// decodeEscapeString decodes the content of an E'...' literal.
func decodeEscapeString(raw string) string {
	var b strings.Builder
	for k := 0; k < len(raw); {
		c := raw[k]
		if c == '\'' && k+1 < len(raw) && raw[k+1] == '\'' {
			b.WriteByte('\'')
			k += 2
			continue
		}
		if c != '\\' || k+1 >= len(raw) {
			b.WriteByte(c)
			k++
			continue
		}
		d := raw[k+1]
		k += 2
		switch d {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(d - '0')
			for n := 0; n < 2 && k < len(raw) && '0' <= raw[k] && raw[k] <= '7'; n++ {
				v = v*8 + int(raw[k]-'0')
				k++
			}
			b.WriteByte(byte(v))
		case 'x':
			v, n := hexValue(raw[k:], 2)
			if n == 0 {
				b.WriteByte('x')
			} else {
				b.WriteByte(byte(v))
			}
			k += n
		case 'u', 'U':
			want := 4
			if d == 'U' {
				want = 8
			}
			v, n := hexValue(raw[k:], want)
			if n != want || !utf8.ValidRune(rune(v)) {
				b.WriteByte(d)
				break
			}
			b.WriteRune(rune(v))
			k += n
		default:
			b.WriteByte(d)
		}
	}
	return b.String()
}

// hexValue reads up to max hex digits at the start of s.
func hexValue(s string, max int) (v, n int) {
	for n < max && n < len(s) {
		c := s[n] | 0x20
		switch {
		case '0' <= s[n] && s[n] <= '9':
			v = v*16 + int(s[n]-'0')
		case 'a' <= c && c <= 'f':
			v = v*16 + int(c-'a'+10)
		default:
			return v, n
		}
		n++
	}
	return v, n
}

// encodeEscapeString quotes s as the content of an E'...' literal.
func encodeEscapeString(s string) string {
	var b strings.Builder
	for k := 0; k < len(s); k++ {
		switch c := s[k]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\'':
			b.WriteString(`''`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
