// Package filter is the content filter of text sends (SPEC §14, issue 17):
// a list of terms (--filter-words) and a rule for links (--filter-links),
// matched on normalised text (NFKC, case folded, default-ignorable code
// points dropped), which refuse a body (reject) or mask what matched (mask).
// The lists are reloaded on SIGHUP without a restart: a *Filter is handed to
// chat once, and Check reads the current compiled lists through an atomic
// pointer that Reload swaps.
package filter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	// coregx/ahocorasick rather than petar-dambovaliev/aho-corasick (the
	// port of BurntSushi's Rust crate): with 10,000 terms, over a 200-byte
	// message, its FindAllOverlapping takes 0.8 µs and allocates nothing
	// without a match, against 4 µs and 4 allocations for the other's
	// overlapping iterator; it builds 10,000 terms in 0.23 s and 32 MB
	// against 0.63 s and 256 MB; it returns plain byte offsets, which the
	// mask needs; and it is released and maintained (v0.3.1, 2026), where
	// the other has no tagged release. Its IsMatch is not used: its
	// prefilter re-scans the message for each of the terms' first bytes
	// whenever the automaton returns to its start (13 µs for the same case).
	"github.com/coregx/ahocorasick"

	"github.com/imqtt/imqtt/chat"
	"github.com/imqtt/imqtt/internal/metrics"
)

// Actions: what a match does to a send (--filter-action).
const (
	ActionReject = "reject" // the send is refused with chat.ErrRejected, nothing stored
	ActionMask   = "mask"   // each match is overwritten with '*', one a character
)

// Link rules (--filter-links): LinksAllow and LinksDeny, or else the path
// of a file of allowed domains.
const (
	LinksAllow = "allow" // links are text like any other
	LinksDeny  = "deny"  // every link is a match
)

// The defaults of the flags.
const (
	DefaultAction = ActionReject
	DefaultLinks  = LinksAllow
)

// The lists' limits. The automaton is a full DFA: 10,000 terms of 4 to 12
// letters build in 0.23 s into 32 MB, 100,000 in 2 s into 300 MB (the
// memory and the pause of each reload grow with the terms), so a list is
// held to 100,000 terms, in a file of at most 8 MiB, each term at most 256
// bytes once normalised. Past a limit the file is refused (at start-up:
// imqttd does not start; on SIGHUP: the old lists stay).
const (
	MaxTerms     = 100_000
	MaxFileBytes = 8 << 20
	MaxTermBytes = 256
	MaxDomains   = 100_000
)

// ErrTooLarge is a list file past MaxFileBytes, MaxTerms or MaxDomains, or
// a term past MaxTermBytes.
var ErrTooLarge = errors.New("over the filter's limits")

// Options configure a Filter.
type Options struct {
	// Words is the file of terms, one a line (--filter-words); "" none.
	// Blank lines and lines starting with '#' are skipped; spaces around a
	// term are trimmed.
	Words string
	// Action is ActionReject ("" too) or ActionMask.
	Action string
	// Links is LinksAllow ("" too), LinksDeny, or the file of allowed
	// domains, one a line: a link to one of them or a subdomain passes,
	// any other is a match.
	Links   string
	Logger  *slog.Logger
	Metrics *metrics.Metrics // required
}

// Enabled reports whether o asks for any filtering: a term file, or links
// other than allowed.
func (o Options) Enabled() bool {
	return o.Words != "" || (o.Links != "" && o.Links != LinksAllow)
}

// Filter checks text bodies against the current lists; it implements
// chat.Filter. It is safe for concurrent use, Reload included.
type Filter struct {
	opts Options
	cur  atomic.Pointer[lists]
	// reload serialises reloads (SIGHUPs in a row)
	reload sync.Mutex
}

var _ chat.Filter = (*Filter)(nil)

// lists are the compiled lists of one load; never changed once built.
type lists struct {
	terms   *ahocorasick.Automaton // nil: no terms
	nTerms  int
	maxLen  int                 // bytes of the longest term
	links   string              // LinksAllow, LinksDeny or "file"
	allowed map[string]struct{} // the allowed domains, in ASCII, when links is "file"
}

// New reads the lists o names and returns a Filter. An error names the
// flag and the file (never a line of it).
func New(o Options) (*Filter, error) {
	switch o.Action {
	case "":
		o.Action = DefaultAction
	case ActionReject, ActionMask:
	default:
		return nil, fmt.Errorf("--filter-action: reject or mask, not %q", o.Action)
	}
	if o.Links == "" {
		o.Links = DefaultLinks
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		return nil, errors.New("filter: no metrics")
	}
	l, err := load(o)
	if err != nil {
		return nil, err
	}
	inertOnce.Do(buildInert) // ~60 ms, here rather than in the first send
	f := &Filter{opts: o}
	f.cur.Store(l)
	o.Logger.Info("content filter", "terms", l.nTerms, "links", l.linksRule(), "domains", len(l.allowed), "action", o.Action)
	return f, nil
}

func (l *lists) linksRule() string { return l.links }

// Reload reads the files again and, if all of them load, swaps the new
// lists in; else the old ones stay, the error is logged (the flag and the
// path, never the content) and returned.
func (f *Filter) Reload() error {
	f.reload.Lock()
	defer f.reload.Unlock()
	l, err := load(f.opts)
	if err != nil {
		f.opts.Metrics.FilterReloaded("error")
		f.opts.Logger.Error("content filter: reload failed, the old lists stay", "err", err)
		return err
	}
	f.cur.Store(l)
	f.opts.Metrics.FilterReloaded("ok")
	f.opts.Logger.Info("content filter reloaded", "terms", l.nTerms, "links", l.linksRule(), "domains", len(l.allowed))
	return nil
}

// load reads and compiles the lists o names.
func load(o Options) (*lists, error) {
	l := &lists{links: o.Links}
	if o.Words != "" {
		terms, err := readList(o.Words, "--filter-words", MaxTerms, Normalize)
		if err != nil {
			return nil, err
		}
		if len(terms) > 0 {
			ac, err := ahocorasick.NewBuilder().SetMatchKind(ahocorasick.LeftmostLongest).AddStrings(terms).Build()
			if err != nil {
				return nil, fmt.Errorf("--filter-words %s: %w", o.Words, err)
			}
			l.terms, l.nTerms = ac, len(terms)
			for _, term := range terms {
				l.maxLen = max(l.maxLen, len(term))
			}
		}
	}
	if o.Links != LinksAllow && o.Links != LinksDeny {
		domains, err := readList(o.Links, "--filter-links", MaxDomains, normalizeDomain)
		if err != nil {
			return nil, err
		}
		l.links, l.allowed = "file", make(map[string]struct{}, len(domains))
		for _, d := range domains {
			l.allowed[d] = struct{}{}
		}
	}
	return l, nil
}

// normalizeDomain reads an allowed domain as hosts are read in text:
// normalised, dots as '.', in ASCII; a leading "*." or "." is the same
// domain (its subdomains pass anyway).
func normalizeDomain(s string) string {
	s = Normalize(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "*"), ".")
	return asciiHost(s)
}

// readList reads the file at path, one entry a line, each through norm;
// blank lines, '#' lines and entries empty once normalised are skipped,
// duplicates dropped. flag names the file in errors.
func readList(path, flag string, maxEntries int, norm func(string) string) ([]string, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err) // the error names the path
	}
	defer file.Close()
	raw, err := io.ReadAll(io.LimitReader(file, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(raw) > MaxFileBytes {
		return nil, fmt.Errorf("%s %s: larger than %d bytes: %w", flag, path, MaxFileBytes, ErrTooLarge)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%s %s: not UTF-8 text", flag, path)
	}
	seen := map[string]struct{}{}
	var out []string
	lines := bufio.NewScanner(bytes.NewReader(raw))
	lines.Buffer(nil, MaxFileBytes+1)
	for n := 1; lines.Scan(); n++ {
		line := strings.TrimSpace(lines.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e := norm(line)
		if e == "" {
			continue
		}
		if len(e) > MaxTermBytes {
			return nil, fmt.Errorf("%s %s: line %d: longer than %d bytes once normalised: %w", flag, path, n, MaxTermBytes, ErrTooLarge)
		}
		if _, dup := seen[e]; dup {
			continue
		}
		if len(out) == maxEntries {
			return nil, fmt.Errorf("%s %s: more than %d entries: %w", flag, path, maxEntries, ErrTooLarge)
		}
		seen[e] = struct{}{}
		out = append(out, e)
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	return out, nil
}

// The refusals' messages say why, never what matched.
const (
	msgTerm = "the message contains a term this server does not allow"
	msgLink = "the message contains a link this server does not allow"
)

// scratch is one Check's working memory, pooled.
type scratch struct {
	t     text
	match []span // body byte ranges to mask
}

type span struct{ start, end int }

// searchWindow is the stretch of normalised text searched for terms at once.
const searchWindow = 4096

// maxMasked is the most term matches a masked body may hold; one with more
// is refused as with --filter-action reject.
const maxMasked = 1024

// add adds the body range [s, e) to the ranges to mask, merging it with
// those it overlaps or touches. Terms come by their end, which never
// decreases, so only the last ranges can merge; links come after them.
func (sc *scratch) add(s, e int) {
	for n := len(sc.match); n > 0; n-- {
		last := sc.match[n-1]
		if last.end < s || last.start > e {
			break
		}
		s, e = min(s, last.start), max(e, last.end)
		sc.match = sc.match[:n-1]
	}
	sc.match = append(sc.match, span{s, e})
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// Check returns body as it is to be stored, or a refusal wrapping
// chat.ErrRejected (chat.Filter). Each outcome is counted
// (imqtt_filter_total).
func (f *Filter) Check(body string) (string, error) {
	l := f.cur.Load()
	if l.terms == nil && l.links == LinksAllow {
		f.opts.Metrics.FilterChecked("pass")
		return body, nil
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	out, why := f.check(l, sc, body)
	switch {
	case why != "":
		f.opts.Metrics.FilterChecked("rejected")
		return "", &chat.Error{Err: chat.ErrRejected, Msg: why}
	case len(out) != len(body) || out != body:
		f.opts.Metrics.FilterChecked("masked")
	default:
		f.opts.Metrics.FilterChecked("pass")
	}
	return out, nil
}

// check matches body against l: it returns body (nothing matched), body
// masked, or why it is refused.
func (f *Filter) check(l *lists, sc *scratch, body string) (string, string) {
	reject := f.opts.Action == ActionReject
	t := &sc.t
	t.normalize(body)
	sc.match = sc.match[:0]
	if l.terms != nil {
		// FindAllOverlapping: with overlapping terms ("abc", "bcdef" in
		// "abcdef") every one is masked, not only the leftmost. It is run
		// on windows of searchWindow bytes, overlapping by a term's length
		// less one, so that a body full of matches (64 KiB of a term) costs
		// a window's worth of them at a time, and reject stops at the first
		// window with one.
		h := t.norm
		matched := 0
		for off := 0; off < len(h); off += searchWindow {
			end := min(off+searchWindow+l.maxLen-1, len(h))
			ms := l.terms.FindAllOverlapping(h[off:end])
			if len(ms) > 0 && reject {
				return "", msgTerm
			}
			// A body made of little but terms is refused rather than
			// masked: masking 64 KiB of nested terms cost 4 ms and 24 MB
			// a send, on the sender's connection goroutine.
			if matched += len(ms); matched > maxMasked {
				return "", msgTerm
			}
			for _, m := range ms {
				s, e := t.bodyRange(off+m.Start, off+m.End)
				sc.add(s, e)
			}
		}
	}
	why := ""
	if l.links != LinksAllow {
		findLinks(t.norm, func(start, end int, host string) bool {
			if l.links == "file" && host != "" && allowedHost(l.allowed, host) {
				return true
			}
			if reject {
				why = msgLink
				return false
			}
			s, e := t.bodyRange(start, end)
			sc.add(s, e)
			return true
		})
	}
	if why != "" || len(sc.match) == 0 {
		return body, why
	}
	return mask(body, sc.match), ""
}

// mask writes one '*' over each character (rune; an invalid byte counts
// as one) of body that a span covers; overlapping and adjacent spans
// merge. The result is never longer than body, has as many characters,
// and leaves every other character as it was.
func mask(body string, spans []span) string {
	sort.Slice(spans, func(i, j int) bool { return spans[i].start < spans[j].start })
	var b strings.Builder
	b.Grow(len(body))
	pos := 0
	for _, s := range spans {
		if s.end <= pos {
			continue
		}
		if s.start > pos {
			b.WriteString(body[pos:s.start])
			pos = s.start
		}
		for pos < s.end {
			_, size := utf8.DecodeRuneInString(body[pos:])
			b.WriteByte('*')
			pos += size
		}
	}
	b.WriteString(body[pos:])
	return b.String()
}
