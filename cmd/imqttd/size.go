package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// The units a size flag takes: SI (KB = 1000) and IEC (KiB = 1024), in
// any case; a bare number is bytes.
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize reads a size in bytes: "262144", "256KiB", "1.5 MiB",
// "512KB", "-1" (the flags where negative means off).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' && r != '+' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	}
	mult, ok := sizeUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("%q is not a size: bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil && mult == 1 {
		return n, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	b := math.Round(f * mult)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || b != f*mult || b >= math.MaxInt64 || b <= math.MinInt64 {
		return 0, fmt.Errorf("%q is not a size in whole bytes that fits", s)
	}
	return int64(b), nil
}

// humanSize is n bytes as help shows a default: in the largest IEC unit
// that divides it ("256 KiB", "1 GiB"), else in bytes.
func humanSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// sizeFlag is a size in bytes as a flag of any integer type: it takes
// parseSize's forms, and its String is plain bytes (the flag's DefValue,
// what a config file round-trips).
type sizeFlag[T int | int64 | uint] struct{ p *T }

func (f sizeFlag[T]) String() string {
	if f.p == nil {
		return "0"
	}
	return fmt.Sprint(*f.p)
}

func (f sizeFlag[T]) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if n < 0 && ^T(0) > 0 { // an unsigned flag
		return fmt.Errorf("%q: a size of 0 or more bytes", s)
	}
	if int64(T(n)) != n {
		return fmt.Errorf("%q: too large", s)
	}
	*f.p = T(n)
	return nil
}

// bytes is the value for help's default.
func (f sizeFlag[T]) bytes() int64 { return int64(*f.p) }

// sized is a sizeFlag of any type.
type sized interface{ bytes() int64 }
