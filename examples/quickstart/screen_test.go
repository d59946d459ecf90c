package main

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// screen is a small terminal for tests: it plays what the board writes
// onto a width x height screen, as xterm does (a line feed on the last
// row scrolls the top row off, a character past the last column wraps),
// and keeps what scrolled off, so a test can tell a board redrawn in
// place from one that scrolled.
type screen struct {
	t        testing.TB
	w, h     int
	rows     [][]rune
	r, c     int
	pending  bool     // the last column was written: the next character wraps
	scrolled []string // rows scrolled off the top, oldest first
	wraps    int      // lines that wrapped
}

func newScreen(t testing.TB, w, h int) *screen {
	s := &screen{t: t, w: w, h: h, rows: make([][]rune, h)}
	for i := range s.rows {
		s.rows[i] = blank(w)
	}
	return s
}

func blank(w int) []rune { return []rune(strings.Repeat(" ", w)) }

// write plays out: text, CR, LF (which also returns the carriage, as a
// tty's ONLCR makes it) and the CSI sequences the board uses.
func (s *screen) write(out string) {
	s.t.Helper()
	for i := 0; i < len(out); {
		switch out[i] {
		case '\x1b':
			j := i + 2
			for j < len(out) && (out[j] < '@' || out[j] > '~') {
				j++
			}
			if i+1 >= len(out) || out[i+1] != '[' || j >= len(out) {
				s.t.Fatalf("unknown escape sequence at %q", out[i:])
			}
			s.csi(out[i+2:j], out[j])
			i = j + 1
			continue
		case '\r':
			s.c, s.pending = 0, false
		case '\n':
			s.c, s.pending = 0, false
			s.lineFeed()
		default:
			r, size := utf8.DecodeRuneInString(out[i:])
			if s.pending {
				s.c, s.pending = 0, false
				s.wraps++
				s.lineFeed()
			}
			s.rows[s.r][s.c] = r
			if s.c == s.w-1 {
				s.pending = true
			} else {
				s.c++
			}
			i += size
			continue
		}
		i++
	}
}

func (s *screen) csi(params string, final byte) {
	s.t.Helper()
	n := 1
	if params != "" {
		if v, err := strconv.Atoi(params); err == nil {
			n = v
		}
	}
	switch final {
	case 'A': // cursor up, stopping at the top row
		s.r, s.pending = max(0, s.r-n), false
	case 'K': // erase the line (2K: all of it)
		if params != "2" {
			s.t.Fatalf("unexpected erase in line %q", params)
		}
		s.rows[s.r] = blank(s.w)
	case 'J': // erase below the cursor
		copy(s.rows[s.r][s.c:], blank(s.w-s.c))
		for r := s.r + 1; r < s.h; r++ {
			s.rows[r] = blank(s.w)
		}
	case 'm': // colours take no room
	default:
		s.t.Fatalf("unexpected CSI %q%c", params, final)
	}
}

func (s *screen) lineFeed() {
	if s.r < s.h-1 {
		s.r++
		return
	}
	s.scrolled = append(s.scrolled, strings.TrimRight(string(s.rows[0]), " "))
	copy(s.rows, s.rows[1:])
	s.rows[s.h-1] = blank(s.w)
}

// lines returns what scrolled off, then the screen, right-trimmed.
func (s *screen) lines() []string {
	out := append([]string(nil), s.scrolled...)
	for _, r := range s.rows {
		out = append(out, strings.TrimRight(string(r), " "))
	}
	return out
}

// count returns how many of lines contain sub.
func count(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}
