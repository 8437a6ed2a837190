package filter

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
)

// writeList writes lines to a file in dir and returns its path.
func writeList(t testing.TB, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFilter builds a Filter of words with action and links (a rule, or
// "file:" and the allowed domains).
func newFilter(t testing.TB, action, links string, words ...string) *Filter {
	t.Helper()
	dir := t.TempDir()
	o := Options{Action: action, Links: links, Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler)}
	if len(words) > 0 {
		o.Words = writeList(t, dir, "words.txt", words...)
	}
	if d, ok := strings.CutPrefix(links, "file:"); ok {
		o.Links = writeList(t, dir, "domains.txt", strings.Split(d, ",")...)
	}
	f, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"BAD", "bad"},
		{"ＢＡＤ", "bad"},                 // full width
		{"𝒷𝒶𝒹", "bad"},                 // mathematical script letters
		{"ℬ𝒶𝒹", "bad"},                 // letterlike symbol
		{"𝐁𝐀𝐃", "bad"},                 // mathematical bold capitals
		{"ﬁne", "fine"},                // ligature
		{"b\u200bad", "bad"},           // zero-width space
		{"b\u200dad", "bad"},           // zero-width joiner
		{"b\u200cad", "bad"},           // zero-width non-joiner
		{"ba\u00add", "bad"},           // soft hyphen
		{"bad\ufe0f", "bad"},           // variation selector
		{"\ufeffbad", "bad"},           // byte order mark
		{"b\u2060ad", "bad"},           // word joiner
		{"Straße", "strasse"},          // full case folding
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},         // Greek, final sigma folded
		{"cafe\u0301", "café"},         // composed
		{"例え", "例え"},                   // already normal
		{"ｶﾀｶﾅ", "カタカナ"},               // half-width katakana
		{"①②", "12"},                   // circled digits
		{"ＥＸＡＭＰＬＥ．ＣＯＭ", "example.com"}, // full-width dot
	} {
		if got := Normalize(c.in); got != c.want {
			t.Errorf("Normalize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestIgnorableTable: the table is Default_Ignorable_Code_Point as Unicode
// derives it, from the tables of Go's unicode package.
func TestIgnorableTable(t *testing.T) {
	excluded := func(r rune) bool {
		return unicode.Is(unicode.White_Space, r) || r >= 0xfff9 && r <= 0xfffb ||
			r >= 0x13430 && r <= 0x1343f || unicode.Is(unicode.Prepended_Concatenation_Mark, r)
	}
	for r := rune(0); r <= unicode.MaxRune; r++ {
		want := (unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) || unicode.Is(unicode.Cf, r) ||
			unicode.Is(unicode.Variation_Selector, r)) && !excluded(r)
		if isIgnorable(r) != want {
			t.Errorf("isIgnorable(%U) = %v, want %v", r, !want, want)
		}
	}
}

// TestReject: every form of a term is refused, with rejected and a message
// that does not quote the term; other text passes unchanged.
func TestReject(t *testing.T) {
	f := newFilter(t, "", "", "# a comment", "", "  bad  ", "坏蛋", "ＰＯＯＲ")
	for _, body := range []string{"bad", "so BAD", "ＢＡＤ!", "𝒷𝒶𝒹", "b\u200bad", "ba\u00add", "b\u200d\u200dad",
		"你是坏蛋", "poor", "POOR thing"} {
		out, err := f.Check(body)
		var ce *chat.Error
		if !errors.As(err, &ce) || !errors.Is(err, chat.ErrRejected) {
			t.Errorf("Check(%q) = %q, %v: want a chat.Error wrapping ErrRejected", body, out, err)
			continue
		}
		if strings.Contains(ce.Msg, "bad") || strings.Contains(ce.Msg, body) {
			t.Errorf("refusal %q quotes what matched", ce.Msg)
		}
	}
	for _, body := range []string{"good", "b ad", "ba", "a comment", "例え", ""} {
		if out, err := f.Check(body); err != nil || out != body {
			t.Errorf("Check(%q) = %q, %v: want it unchanged", body, out, err)
		}
	}
}

// TestMask: '*' over each original character a match covers, whatever its
// width in bytes or its normalised length.
func TestMask(t *testing.T) {
	f := newFilter(t, ActionMask, "", "bad", "坏蛋", "abc", "bcdef", "fine", "café", "ss")
	for _, c := range []struct{ in, want string }{
		{"a bad day", "a *** day"},
		{"a BAD day", "a *** day"},
		{"a ＢＡＤ day", "a *** day"},          // 3-byte runes, one '*' each
		{"a 𝒷𝒶𝒹 day", "a *** day"},          // 4-byte runes
		{"日本 bad 日本", "日本 *** 日本"},          // multi-byte before and after
		{"你是坏蛋吗", "你是**吗"},                  // CJK
		{"xb\u200badx", "x****x"},           // an ignorable inside a match is masked too
		{"b\u200bad\u200b!", "****\u200b!"}, // one after it is not
		{"xabcdefx", "x******x"},            // overlapping matches merge
		{"abc bcdef", "*** *****"},          // separate matches
		{"badbad", "******"},                // adjacent
		{"ﬁne!", "***!"},                    // a ligature: one character, two letters
		{"cafe\u0301!", "*****!"},           // decomposed: each code point masked
		{"Straße", "Stra*e"},                // ß folds to ss: the one character masked
		{"fine bad ok", "**** *** ok"},
		{"clean", "clean"},
	} {
		out, err := f.Check(c.in)
		if err != nil || out != c.want {
			t.Errorf("Check(%q) = %q, %v; want %q", c.in, out, err, c.want)
		}
	}
}

// TestLinks: with --filter-links deny every form of link a reader sees is
// a match; text that only looks dotted is not.
func TestLinks(t *testing.T) {
	f := newFilter(t, ActionMask, LinksDeny)
	for _, c := range []struct{ in, want string }{
		{"go to http://x.example/p now", "go to ****************** now"},
		{"https://localhost:8080/x", "************************"},
		{"see www.example.com", "see ***************"},
		{"see example.com/path?q=1#f ok", "see ********************** ok"},
		{"example.com:8080/x", "******************"},
		{"ＥＸＡＭＰＬＥ．ＣＯＭ", "***********"},
		{"example。com", "***********"},
		{"example｡com", "***********"},
		{"例え.jp", "*****"},
		{"访问example.com谢谢", "访问***********谢谢"},
		{"mail bob@shop.co.uk", "mail bob@**********"},
		{"bücher.de.", "*********."},
		{"foo.github.io", "*************"}, // a private suffix's host, on an ICANN TLD
		{"e\u200bxample.com", "************"},
		// not links
		{"file.txt", "file.txt"},
		{"v1.2", "v1.2"},
		{"pi is 3.14", "pi is 3.14"},
		{"the end. Next", "the end. Next"},
		{"ratio 3:4", "ratio 3:4"},
		{"a.b", "a.b"},
		{"...", "..."},
		{"http://", "http://"},
		{"com", "com"},
	} {
		out, err := f.Check(c.in)
		if err != nil || out != c.want {
			t.Errorf("Check(%q) = %q, %v; want %q", c.in, out, err, c.want)
		}
	}
	r := newFilter(t, ActionReject, LinksDeny)
	if _, err := r.Check("visit Example.COM today"); !errors.Is(err, chat.ErrRejected) {
		t.Errorf("reject, a link: %v", err)
	}
	if _, err := r.Check("no link in file.txt"); err != nil {
		t.Errorf("reject, no link: %v", err)
	}
}

// TestLinksAllowed: with a file of domains, links to them and their
// subdomains pass; others, look-alikes included, are matches.
func TestLinksAllowed(t *testing.T) {
	f := newFilter(t, ActionReject, "file:# ours,Example.COM, 例え.jp,*.corp.io")
	for _, body := range []string{"https://example.com/x", "see example.com", "docs.example.com/a", "WWW.EXAMPLE.COM",
		"ＥＸＡＭＰＬＥ．ＣＯＭ", "http://例え.jp/", "xn--r8jz45g.jp", "a.corp.io", "no link",
		"https://example.com/?u=evil.io"} { // a link to example.com {
		if out, err := f.Check(body); err != nil || out != body {
			t.Errorf("Check(%q) = %q, %v: want it allowed", body, out, err)
		}
	}
	for _, body := range []string{"evil.io", "notexample.com", "example.com.evil.io", "http://evil.io/?u=example.com",
		"http://1.2.3.4/", "corp.io.evil.io"} {
		if _, err := f.Check(body); !errors.Is(err, chat.ErrRejected) {
			t.Errorf("Check(%q): %v, want rejected", body, err)
		}
	}
}

// TestReload: a good file swaps the lists in; a bad one leaves the old
// ones, and each is counted.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	words := writeList(t, dir, "words.txt", "alpha")
	m := metrics.New()
	f, err := New(Options{Words: words, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rejected := func(body string) bool { _, err := f.Check(body); return err != nil }
	if !rejected("alpha") || rejected("beta") {
		t.Fatal("before the reload")
	}
	writeList(t, dir, "words.txt", "beta")
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if rejected("alpha") || !rejected("beta") {
		t.Fatal("after a good reload: want the new list")
	}
	for _, c := range []struct {
		name    string
		breakIt func()
	}{
		{"missing", func() { os.Remove(words) }},
		{"directory", func() { os.Mkdir(words, 0o700) }},
		{"too long", func() { os.Remove(words); writeList(t, dir, "words.txt", "gamma", strings.Repeat("x", MaxTermBytes+1)) }},
	} {
		name := c.name
		c.breakIt()
		if err := f.Reload(); err == nil || !strings.Contains(err.Error(), words) {
			t.Errorf("%s: reload error %v: want one naming %s", name, err, words)
		}
		if rejected("gamma") || !rejected("beta") {
			t.Errorf("%s: after a failed reload: want the old list", name)
		}
	}
	if ok, bad := testutil.ToFloat64(m.FilterReloads.WithLabelValues("ok")), testutil.ToFloat64(m.FilterReloads.WithLabelValues("error")); ok != 1 || bad != 3 {
		t.Errorf("reloads counted ok %v, error %v; want 1, 3", ok, bad)
	}
}

// TestStartErrors: a file that is missing, unreadable or past a limit
// stops New with an error naming the flag and the path.
func TestStartErrors(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.txt")
	// Valid lines, one term: only the size is wrong.
	if err := os.WriteFile(huge, []byte(strings.Repeat("a\n", MaxFileBytes/2+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	many := make([]string, MaxTerms+1)
	for i := range many {
		many[i] = fmt.Sprintf("t%d", i)
	}
	long := writeList(t, dir, "long.txt", "ok", strings.Repeat("é", MaxTermBytes/2+1))
	expands := writeList(t, dir, "expands.txt", strings.Repeat("\ufdfa", 15)) // 45 bytes that NFKC makes 270
	binary := filepath.Join(dir, "binary")
	os.WriteFile(binary, []byte{0xff, 0xfe, 'x'}, 0o600)
	for _, c := range []struct {
		name string
		o    Options
		flag string
		path string
	}{
		{"missing words", Options{Words: filepath.Join(dir, "nope.txt")}, "--filter-words", filepath.Join(dir, "nope.txt")},
		{"missing links", Options{Links: filepath.Join(dir, "nope.txt")}, "--filter-links", filepath.Join(dir, "nope.txt")},
		{"unreadable", Options{Words: dir}, "--filter-words", dir},
		{"too large", Options{Words: huge}, "--filter-words", huge},
		{"too many", Options{Words: writeList(t, dir, "many.txt", many...)}, "--filter-words", filepath.Join(dir, "many.txt")},
		{"term too long", Options{Words: long}, "--filter-words", long},
		{"term too long once normalised", Options{Words: expands}, "--filter-words", expands},
		{"not text", Options{Words: binary}, "--filter-words", binary},
		{"bad action", Options{Action: "drop"}, "--filter-action", ""},
	} {
		c.o.Metrics = metrics.New()
		_, err := New(c.o)
		if err == nil || !strings.Contains(err.Error(), c.flag) || !strings.Contains(err.Error(), c.path) {
			t.Errorf("%s: %v: want an error naming %s %s", c.name, err, c.flag, c.path)
		}
	}
	// At the limit is fine.
	if _, err := New(Options{Words: writeList(t, dir, "max.txt", many[:MaxTerms]...), Metrics: metrics.New()}); err != nil {
		t.Errorf("%d terms: %v", MaxTerms, err)
	}
}

// TestCounted: each outcome is counted by its result.
func TestCounted(t *testing.T) {
	dir := t.TempDir()
	m := metrics.New()
	words := writeList(t, dir, "w.txt", "bad")
	mask, _ := New(Options{Words: words, Action: ActionMask, Metrics: m})
	reject, _ := New(Options{Words: words, Metrics: m})
	mask.Check("ok")
	mask.Check("bad")
	reject.Check("bad")
	reject.Check("bad")
	for result, want := range map[string]float64{"pass": 1, "masked": 1, "rejected": 2} {
		if got := testutil.ToFloat64(m.FilterTotal.WithLabelValues(result)); got != want {
			t.Errorf("imqtt_filter_total{result=%q} = %v, want %v", result, got, want)
		}
	}
}

// FuzzCheck: Check never panics; a mask refuses only a body of little but
// terms, and else leaves as many characters, each either '*' or the one
// that was there, and never lengthens the text;
// reject either refuses or returns the body unchanged; an unchanged body
// is exactly what passed.
func FuzzCheck(f *testing.F) {
	for _, s := range []string{"bad", "a ＢＡＤ day", "b\u200bad", "ﬁne", "cafe\u0301", "例え.jp", "访问example.com谢谢",
		"http://x.example/p", "\xff\xfebad", "Straße", "ǅ", "\u0345\u0345", "a\u0301\u0301\u0301\u0301b"} {
		f.Add(s)
	}
	mask := newFilter(f, ActionMask, LinksDeny, "bad", "fine", "ss", "坏蛋", "é", "ab")
	reject := newFilter(f, ActionReject, "file:example.com", "bad", "fine", "ss", "坏蛋", "é", "ab")
	f.Fuzz(func(t *testing.T, body string) {
		// The fast paths (inert and mapped characters) agree with norm.Iter
		// over the whole body, mapping included.
		var fast, slow text
		fast.normalize(body)
		slow.slow(body, 0, len(body))
		if string(fast.norm) != string(slow.norm) {
			t.Fatalf("normalize(%q) = %q, norm.Iter gives %q", body, fast.norm, slow.norm)
		}
		out, err := mask.Check(body)
		if err != nil {
			// Only a body of more than maxMasked matches is refused
			// (TestMaskBound); windows count a match in their overlap
			// twice at most, so the whole text holds more than half.
			if n := len(mask.cur.Load().terms.FindAllOverlapping(fast.norm)); n <= maxMasked/2 {
				t.Fatalf("mask refused %q with %d matches: %v", body, n, err)
			}
			return
		}
		if len(out) > len(body) || utf8.RuneCountInString(out) != utf8.RuneCountInString(body) {
			t.Fatalf("mask(%q) = %q: changed the length", body, out)
		}
		in, o := body, out
		for in != "" {
			r1, n1 := utf8.DecodeRuneInString(in)
			r2, n2 := utf8.DecodeRuneInString(o)
			if r2 != '*' && (r1 != r2 || in[:n1] != o[:n2]) {
				t.Fatalf("mask(%q) = %q: changed an unmasked character", body, out)
			}
			in, o = in[n1:], o[n2:]
		}
		if out, err := reject.Check(body); err == nil && out != body {
			t.Fatalf("reject(%q) = %q: changed a passed body", body, out)
		} else if err != nil && !errors.Is(err, chat.ErrRejected) {
			t.Fatalf("reject(%q): %v", body, err)
		}
	})
}

// benchTerms is n terms: four in five ASCII words of 4 to 11 letters, one
// in five CJK words of 2 to 4 characters.
func benchTerms(n int) []string {
	r := rand.New(rand.NewSource(1))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		if i%5 == 4 {
			for range 2 + r.Intn(3) {
				b.WriteRune(rune(0x4e00 + r.Intn(0x9fa5-0x4e00)))
			}
		} else {
			for range 4 + r.Intn(8) {
				b.WriteByte(byte('a' + r.Intn(26)))
			}
		}
		out[i] = b.String()
	}
	return out
}

// BenchmarkCheck: 10,000 terms, a 200-byte message (issue 17: at most 5 µs
// a check).
func BenchmarkCheck(b *testing.B) {
	terms := benchTerms(10_000)
	ascii := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 5)[:200]
	cjk := strings.Repeat("我们明天下午三点在公司门口见面，请准时到达。", 4)[:198] // 66 characters
	bad := terms[0]                                          // ASCII
	badCJK := terms[4]
	cases := []struct {
		name, action, links, body string
		masked                    bool
	}{
		{"ascii/clean", ActionReject, LinksAllow, ascii, false},
		{"ascii/match/reject", ActionReject, LinksAllow, ascii[:150] + " " + bad + " " + ascii[:49-len(bad)], true},
		{"ascii/match/mask", ActionMask, LinksAllow, ascii[:150] + " " + bad + " " + ascii[:49-len(bad)], true},
		{"ascii/clean/links=deny", ActionReject, LinksDeny, ascii, false},
		{"cjk/clean", ActionReject, LinksAllow, cjk, false},
		{"cjk/match/mask", ActionMask, LinksAllow, cjk[:99] + badCJK + cjk[:99-len(badCJK)], true},
		{"fullwidth/match/mask", ActionMask, LinksAllow, "ＴＨＥ ＱＵＩＣＫ " + strings.ToUpper(bad) + " " + ascii[:150], true},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("%s/size=%db", c.name, len(c.body)), func(b *testing.B) {
			f := newFilter(b, c.action, c.links, terms...)
			out, err := f.Check(c.body)
			if c.masked != (err != nil || out != c.body) {
				b.Fatalf("Check(%q) = %q, %v: want matched %v", c.body, out, err, c.masked)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				f.Check(c.body)
			}
		})
	}
}

// BenchmarkCheckLarge: the largest body chat takes (64 KiB), clean, and
// the worst for mask: every byte the end of three nested terms.
func BenchmarkCheckLarge(b *testing.B) {
	terms := append(benchTerms(10_000), "q", "qq", "qqq")
	clean := strings.Repeat("the lazy dog sleeps. ", 64<<10/21)
	for _, c := range []struct{ name, action, body string }{
		{"clean", ActionReject, clean},
		{"all-matches/reject", ActionReject, strings.Repeat("q", 64<<10)},
		{"all-matches/mask", ActionMask, strings.Repeat("q", 64<<10)},
	} {
		b.Run(fmt.Sprintf("%s/size=%db", c.name, len(c.body)), func(b *testing.B) {
			f := newFilter(b, c.action, LinksAllow, terms...)
			b.ReportAllocs()
			for b.Loop() {
				f.Check(c.body)
			}
		})
	}
}

// TestWindows: a term across the boundary of two search windows is found,
// and masked whole.
func TestWindows(t *testing.T) {
	reject := newFilter(t, ActionReject, LinksAllow, "badword")
	mask := newFilter(t, ActionMask, LinksAllow, "badword")
	for _, at := range []int{searchWindow - 7, searchWindow - 3, searchWindow - 1, searchWindow, 2*searchWindow - 4} {
		body := strings.Repeat("x", at) + "BADWORD" + strings.Repeat("y", 10)
		if _, err := reject.Check(body); !errors.Is(err, chat.ErrRejected) {
			t.Errorf("term at %d: %v, want rejected", at, err)
		}
		want := strings.Repeat("x", at) + "*******" + strings.Repeat("y", 10)
		if out, _ := mask.Check(body); out != want {
			t.Errorf("term at %d: masked %q…, want %q…", at, out[at-2:at+9], want[at-2:at+9])
		}
	}
}

// TestReloadWhileChecking: a check running during reloads sees one list
// or another, whole (run with -race).
func TestReloadWhileChecking(t *testing.T) {
	dir := t.TempDir()
	words := writeList(t, dir, "words.txt", "alpha", "beta")
	f, err := New(Options{Words: words, Action: ActionMask, Metrics: metrics.New(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	// Each list holds two of the three terms: a check masks two words.
	valid := map[string]bool{"***** **** gamma": true, "***** beta *****": true, "alpha **** *****": true}
	done := make(chan struct{})
	errs := make(chan string, 4)
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					errs <- ""
					return
				default:
				}
				if out, _ := f.Check("alpha beta gamma"); !valid[out] {
					errs <- out
					return
				}
			}
		}()
	}
	lists := [][]string{{"alpha", "gamma"}, {"beta", "gamma"}, {"alpha", "beta"}}
	for i := range 30 {
		writeList(t, dir, "words.txt", lists[i%3]...)
		if err := f.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 4 {
		if e := <-errs; e != "" {
			t.Fatalf("a check during reloads gave %q", e)
		}
	}
}

// TestMaskBound: with mask, a body holding more than maxMasked matches is
// refused instead (masking it costs milliseconds and megabytes on the
// sender's goroutine); one just under is masked.
func TestMaskBound(t *testing.T) {
	f := newFilter(t, ActionMask, LinksAllow, "bad")
	under := strings.Repeat("bad ", maxMasked)
	if out, err := f.Check(under); err != nil || strings.Contains(out, "bad") {
		t.Fatalf("%d matches: %v", maxMasked, err)
	}
	if _, err := f.Check(under + "bad"); !errors.Is(err, chat.ErrRejected) {
		t.Fatalf("%d matches: %v, want rejected", maxMasked+1, err)
	}
}
