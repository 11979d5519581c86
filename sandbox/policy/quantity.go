package policy

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. In a file it is a plain integer or an integer
// with a binary (Ki, Mi, Gi, Ti) or decimal (K or k, M, G, T) suffix.
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

var sizeUnits = []struct {
	suffix string
	factor uint64
}{
	// Longest suffixes first so "Ki" is not read as "K".
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

var (
	errSizeSyntax = errors.New("not a size")
	errSizeRange  = errors.New("size out of range")
)

// parseSize parses the file syntax of a size.
func parseSize(s string) (uint64, error) {
	num, factor := s, uint64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, factor = strings.TrimSuffix(s, u.suffix), u.factor
			break
		}
	}
	if num == "" {
		return 0, errSizeSyntax
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, errSizeSyntax
		}
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, errSizeRange
	}
	if n != 0 && factor > math.MaxUint64/n {
		return 0, errSizeRange
	}
	return n * factor, nil
}

// String formats the size as a file would write it: with the largest binary
// suffix that divides it, else the largest decimal one, else in bytes.
func (s Size) String() string {
	if s < 0 {
		return strconv.FormatInt(int64(s), 10)
	}
	return formatSize(uint64(s))
}

func formatSize(n uint64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		suffix string
		factor uint64
	}{{"Ti", 1 << 40}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}, {"T", 1e12}, {"G", 1e9}, {"M", 1e6}, {"K", 1e3}} {
		if n%u.factor == 0 {
			return strconv.FormatUint(n/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatUint(n, 10)
}

// formatDuration writes a duration the way time.ParseDuration reads it.
func formatDuration(d time.Duration) string {
	return d.String()
}
