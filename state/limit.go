package state

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// String writes l as ParseLimit reads it: "30/m:60", "10/15m:10", "off"
// for a negative Rate.
func (l Limit) String() string {
	if l.Rate < 0 {
		return "off"
	}
	per := l.Per.String()
	switch l.Per {
	case time.Second:
		per = "s"
	case time.Minute:
		per = "m"
	case time.Hour:
		per = "h"
	}
	if strings.HasSuffix(per, "m0s") { // 15m0s -> 15m
		per = per[:len(per)-2]
	}
	if strings.HasSuffix(per, "h0m") { // 2h0m0s -> 2h
		per = per[:len(per)-2]
	}
	return fmt.Sprintf("%d/%s:%d", l.Rate, per, l.Burst)
}

// ParseLimit reads "RATE/PERIOD[:BURST]": RATE events per PERIOD (s, m,
// h, or a duration such as 15m), after a burst of BURST (default RATE).
// "off" is a Limit with a negative Rate, which its users take as no limit.
func ParseLimit(s string) (Limit, error) {
	if s == "off" {
		return Limit{Rate: -1}, nil
	}
	bad := func(why string) (Limit, error) {
		return Limit{}, fmt.Errorf("limit %q: %s (want RATE/PERIOD[:BURST], e.g. 30/m:60, or off)", s, why)
	}
	rateS, rest, ok := strings.Cut(s, "/")
	if !ok {
		return bad("no /")
	}
	perS, burstS, hasBurst := strings.Cut(rest, ":")
	var l Limit
	var err error
	if l.Rate, err = strconv.Atoi(rateS); err != nil || l.Rate <= 0 {
		return bad("rate must be a positive integer")
	}
	if perS != "" && strings.IndexAny(perS[:1], "0123456789") < 0 {
		perS = "1" + perS
	}
	if l.Per, err = time.ParseDuration(perS); err != nil || l.Per <= 0 {
		return bad("period must be s, m, h or a positive duration")
	}
	l.Burst = l.Rate
	if hasBurst {
		if l.Burst, err = strconv.Atoi(burstS); err != nil || l.Burst <= 0 {
			return bad("burst must be a positive integer")
		}
	}
	if !l.Valid() {
		return bad("invalid")
	}
	return l, nil
}
