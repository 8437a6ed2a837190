package filter

import (
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// fold is Unicode full case folding; cases.Fold's Caser is stateless and
// safe for concurrent use (its doc).
var fold = cases.Fold()

// ignorable is Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties
// 15.1): the code points a reader does not see, which text may carry inside a
// word to slip it past a filter ("b\u200bad"). The derivation from Go's own
// tables (Other_Default_Ignorable_Code_Point + Cf + Variation_Selector, less
// White_Space, the interlinear annotations, the Egyptian format controls and
// Prepended_Concatenation_Mark) is checked by TestIgnorableTable.
var ignorable = &unicode.RangeTable{
	R16: []unicode.Range16{
		{0x00ad, 0x00ad, 1}, {0x034f, 0x034f, 1}, {0x061c, 0x061c, 1},
		{0x115f, 0x1160, 1}, {0x17b4, 0x17b5, 1}, {0x180b, 0x180f, 1},
		{0x200b, 0x200f, 1}, {0x202a, 0x202e, 1}, {0x2060, 0x206f, 1},
		{0x3164, 0x3164, 1}, {0xfe00, 0xfe0f, 1}, {0xfeff, 0xfeff, 1},
		{0xffa0, 0xffa0, 1}, {0xfff0, 0xfff8, 1},
	},
	R32: []unicode.Range32{
		{0x1bca0, 0x1bca3, 1}, {0x1d173, 0x1d17a, 1}, {0xe0000, 0xe0fff, 1},
	},
}

// isIgnorable reports whether r is a default-ignorable code point.
func isIgnorable(r rune) bool {
	return r >= 0xad && unicode.Is(ignorable, r)
}

// text is a body as the matcher sees it: NFKC, case folded, without
// default-ignorable code points, with the way back to the body's bytes.
type text struct {
	norm []byte // what the terms and links are matched against
	// When identity, norm's bytes are the body's, offset for offset (the
	// body was already normal: the fast path). Else seg[i] is the segment
	// of body that norm's byte i came from, and span[seg[i]] its body bytes.
	identity bool
	seg      []int32
	span     []bodySpan
	tmp      []byte // a folded segment
	iter     norm.Iter
}

// bodySpan is a byte range [start, end) of the body: one normalisation
// segment (a starter and its combining marks), which is masked whole.
type bodySpan struct{ start, end int32 }

// bodyRange maps the normalised bytes [s, e) (a match) to the body's bytes
// it came from: from its first segment's start to its last one's end, so
// an ignorable code point dropped inside a match is covered too.
func (t *text) bodyRange(s, e int) (int, int) {
	if t.identity {
		return s, e
	}
	return int(t.span[t.seg[s]].start), int(t.span[t.seg[e-1]].end)
}

// normalize fills t from body, reusing t's slices. Case folding is applied
// segment by segment after NFKC; terms go through the same function, so a
// term and its text are compared in one form.
//
// Most text is normal already, or only its ASCII letters change: each
// character is looked up in a table of the inert ones (inertTable), and
// only the runs of others go through norm.Iter, with the character before
// them, which they may combine with.
func (t *text) normalize(body string) {
	t.norm = append(t.norm[:0], body...)
	t.seg, t.span = t.seg[:0], t.span[:0]
	t.identity = true
	if inertText(t.norm) {
		return // normal once its ASCII letters are lower case: offsets are the body's
	}
	t.identity = false
	t.norm = t.norm[:0]
	for i := 0; i < len(body); {
		c := body[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			t.emit(body[i:i+1], c, i, i+1)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(body[i:])
		if inert(r) {
			t.emit(body[i:i+size], 0, i, i+size)
			i += size
			continue
		}
		if m, ok := mapped(r); ok {
			t.emitMapped(m, i, i+size)
			i += size
			continue
		}
		start := i
		if n := len(t.span); n > 0 && t.span[n-1].end == int32(i) {
			// The character before: a starter, emitted alone; it may
			// compose with what follows ("e" and U+0301).
			last := t.span[n-1]
			start = int(last.start)
			cut := len(t.norm)
			for cut > 0 && t.seg[cut-1] == int32(n-1) {
				cut--
			}
			t.norm, t.seg, t.span = t.norm[:cut], t.seg[:cut], t.span[:n-1]
		}
		end := i + size
		for end < len(body) {
			r, size := utf8.DecodeRuneInString(body[end:])
			if r < utf8.RuneSelf || inert(r) {
				break
			}
			end += size
		}
		t.slow(body, start, end)
		i = end
	}
}

// emit appends one inert character of body, [start, end), as its own
// segment: b, or the byte ascii if it is not 0.
func (t *text) emit(b string, ascii byte, start, end int) {
	si := int32(len(t.span))
	t.span = append(t.span, bodySpan{int32(start), int32(end)})
	if ascii != 0 {
		t.norm = append(t.norm, ascii)
	} else {
		t.norm = append(t.norm, b...)
	}
	for range len(b) {
		t.seg = append(t.seg, si)
	}
}

// emitMapped appends m, the normalised form of the body's character
// [start, end), as its own segment (none if m is empty: an ignorable).
func (t *text) emitMapped(m string, start, end int) {
	if m == "" {
		return
	}
	si := int32(len(t.span))
	t.span = append(t.span, bodySpan{int32(start), int32(end)})
	t.norm = append(t.norm, m...)
	for range len(m) {
		t.seg = append(t.seg, si)
	}
}

// slow normalises body[start:end] segment by segment with norm.Iter.
func (t *text) slow(body string, start, end int) {
	it := &t.iter
	it.InitString(norm.NFKC, body[start:end])
	for !it.Done() {
		s := start + it.Pos()
		seg := it.Next()
		e := start + it.Pos()
		folded := seg
		if !foldStable(seg) {
			folded, _, _ = transform.Append(fold, t.tmp[:0], seg)
			t.tmp = folded
		}
		si := int32(len(t.span))
		n := len(t.norm)
		for i := 0; i < len(folded); {
			r, size := utf8.DecodeRune(folded[i:])
			if !isIgnorable(r) {
				t.norm = append(t.norm, folded[i:i+size]...)
			}
			i += size
		}
		if len(t.norm) == n {
			continue // nothing seen: no segment to map to
		}
		t.span = append(t.span, bodySpan{int32(s), int32(e)})
		for range len(t.norm) - n {
			t.seg = append(t.seg, si)
		}
	}
}

// inertText lower-cases the ASCII letters of b in place and reports whether
// every other character of b is inert: then b is normalised, byte for byte.
func inertText(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if !inert(r) {
			return false
		}
		i += size
	}
	return true
}

// inertMax bounds the table of inert characters: the BMP and the SMP
// (emoji, mathematical letters), 16 KiB.
const inertMax = 0x20000

var (
	inertOnce  sync.Once
	inertTable []uint64 // bit r: inert(r), for r < inertMax
	// mappedTable holds the normalised form of each character under
	// inertMax that is not inert but is a boundary before (NFKC does not
	// compose it with what precedes it): capitals, full-width and other
	// compatibility forms, ignorables (""). What follows it may still
	// compose with it: normalize then takes it again with what follows.
	mappedTable map[rune]string
)

// mapped returns the normalised form of r if mappedTable has it.
func mapped(r rune) (string, bool) {
	if r >= inertMax {
		return "", false
	}
	inertOnce.Do(buildInert)
	m, ok := mappedTable[r]
	return m, ok
}

// inert reports whether r, not ASCII, is left as it is by the filter's
// normalisation whatever surrounds it (ASCII is handled apart): a starter
// that nothing before it composes with (NFKC BoundaryBefore), normal, folded
// and not ignorable. Such a character is its own segment.
func inert(r rune) bool {
	if r < inertMax {
		inertOnce.Do(buildInert)
		return inertTable[r>>6]&(1<<(r&63)) != 0
	}
	return inertSlow(r)
}

func inertSlow(r rune) bool {
	if r == utf8.RuneError || isIgnorable(r) {
		return false
	}
	var buf [utf8.UTFMax]byte
	b := buf[:utf8.EncodeRune(buf[:], r)]
	return norm.NFKC.Properties(b).BoundaryBefore() && norm.NFKC.IsNormal(b) && foldStable(b)
}

func buildInert() {
	inertTable = make([]uint64, inertMax/64)
	mappedTable = map[rune]string{}
	var t text
	var buf [utf8.UTFMax]byte
	for r := rune(utf8.RuneSelf); r < inertMax; r++ {
		if inertSlow(r) {
			inertTable[r>>6] |= 1 << (r & 63)
			continue
		}
		b := buf[:utf8.EncodeRune(buf[:], r)]
		if r == utf8.RuneError || !norm.NFKC.Properties(b).BoundaryBefore() {
			continue
		}
		t.norm, t.seg, t.span = t.norm[:0], t.seg[:0], t.span[:0]
		t.slow(string(b), 0, len(b))
		mappedTable[r] = string(t.norm)
	}
}

// foldStable reports whether case folding leaves b as it is.
func foldStable(b []byte) bool {
	n, err := fold.Span(b, true)
	return err == nil && n == len(b)
}

// Normalize returns s as the filter matches it: NFKC, case folded, without
// default-ignorable code points. Terms and allowed domains are read this way.
func Normalize(s string) string {
	var t text
	t.normalize(s)
	return string(t.norm)
}
