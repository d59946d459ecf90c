//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/hatchery-dev/hatchery/internal/testenv"
)

// openPTY returns a pseudo-terminal of width x height: the program writes
// to tty, the test reads what it wrote from out (closed at cleanup).
func openPTY(t *testing.T, width, height int) (tty *os.File, out func() string) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		testenv.Missing(t, fmt.Sprintf("no pseudo-terminal: %v", err))
	}
	ioctl := func(f *os.File, req uintptr, arg unsafe.Pointer) error {
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), req, uintptr(arg)); e != 0 {
			return e
		}
		return nil
	}
	var unlock int32
	require.NoError(t, ioctl(ptm, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)))
	var n uint32
	require.NoError(t, ioctl(ptm, syscall.TIOCGPTN, unsafe.Pointer(&n)))
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	require.NoError(t, err)
	ws := struct{ row, col, x, y uint16 }{uint16(height), uint16(width), 0, 0}
	require.NoError(t, ioctl(tty, syscall.TIOCSWINSZ, unsafe.Pointer(&ws)))

	// Read all the time: a full pty buffer would block the writer.
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := io.Copy(&buf, ptm)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the tty side is closed
			t.Errorf("read the pty: %v", err)
		}
	}()
	var closed bool
	closeAll := func() {
		if !closed {
			closed = true
			tty.Close()
			<-done
			ptm.Close()
		}
	}
	t.Cleanup(closeAll)
	return tty, func() string { closeAll(); return buf.String() }
}

func withTERM(term string) func(string) string {
	return func(k string) string {
		if k == "TERM" {
			return term
		}
		return ""
	}
}

// The run that flooded an 80x24 terminal (169 headers for 30 tenants):
// now the board fits, redraws in place, and what scrolled off is only
// what was printed before it. The screen is played from the bytes the
// terminal received.
func TestRunBoardOnSmallTerminal(t *testing.T) {
	t.Parallel()
	for _, size := range []struct{ w, h int }{{80, 24}, {40, 10}} {
		t.Run(fmt.Sprintf("%dx%d", size.w, size.h), func(t *testing.T) {
			t.Parallel()
			tty, out := openPTY(t, size.w, size.h)
			require.NotNil(t, terminalSize(tty, withTERM("xterm")), "a pty is a terminal")
			w, h := terminalSize(tty, withTERM("xterm"))()
			require.Equal(t, [2]int{size.w, size.h}, [2]int{w, h})

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			var stderr syncBuffer
			code := runEnv(ctx, append([]string{"-tenants", "30"}, fast...), withTERM("xterm"), tty, &stderr)
			got := out()
			require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())

			// The introduction, the board, then the final table (whose
			// full IDs may wrap; the board's lines must not).
			start := strings.Index(got, ansiClear)
			require.Positive(t, start, got)
			end := strings.LastIndex(got, "30/30 ready")
			require.Greater(t, end, start, got)
			end += strings.Index(got[end:], "\n") + 1
			scr := newScreen(t, size.w, size.h)
			scr.write(got[:start])
			scr.wraps = 0
			scr.write(got[start:end])
			assert.Zero(t, scr.wraps, "no board line wrapped")
			scr.write(got[end:])

			lines := scr.lines()
			assert.Equal(t, 1, count(lines, "TENANT    STATUS"), "one board, redrawn in place:\n%s", strings.Join(lines, "\n"))
			assert.Equal(t, 1, count(lines, "/30 ready"), "one summary: each frame drawn over the last")
			assert.Equal(t, 1, count(lines, "30 of 30 tenants ready."))
		})
	}
}

// TERM=dumb: a terminal that cannot move the cursor gets plain lines.
func TestRunDumbTerminal(t *testing.T) {
	t.Parallel()
	tty, out := openPTY(t, 80, 24)
	assert.Nil(t, terminalSize(tty, withTERM("dumb")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stderr syncBuffer
	code := runEnv(ctx, append([]string{"-tenants", "2"}, fast...), withTERM("dumb"), tty, &stderr)
	got := out()
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())
	assert.NotContains(t, got, "\x1b", "no escape sequence")
	assert.Equal(t, 2, strings.Count(got, "  ready              service running"), "one plain line per tenant that became ready:\n%s", got)
	assert.Contains(t, got, "2 of 2 tenants ready.")
}
