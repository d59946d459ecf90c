// Package latency is a TCP forwarder on 127.0.0.1 that holds every chunk of
// data for a set delay in each direction, so that tests and benchmarks can
// count round trips on a loopback link. It can also cut connections on
// demand or after a number of bytes, to simulate a dropped link.
//
// Chunks are delayed, not serialised: a chunk read at time t is written at
// t+delay however many chunks are in flight, like a long, fat pipe. One
// round trip (RTT) therefore costs 2*delay.
package latency

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every connection accepted on Addr to a target address.
type Proxy struct {
	ln     net.Listener
	target string
	up     atomic.Int64 // delay client->server, nanoseconds
	down   atomic.Int64 // delay server->client, nanoseconds

	cutAfter atomic.Int64 // bytes client->server per connection; 0 = never
	accepted atomic.Int64

	mu    sync.Mutex
	conns map[*link]struct{}
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once
}

type link struct {
	client, server net.Conn
	up             atomic.Int64 // bytes client->server
	finished       atomic.Int32 // directions done
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.server.Close()
	})
}

// New listens on 127.0.0.1 (a free port) and forwards to target, delaying
// each chunk by delay in each direction.
func New(target string, delay time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}, done: make(chan struct{})}
	p.SetDelay(delay)
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the address clients should dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDelay changes the delay, each way, for chunks read from now on.
func (p *Proxy) SetDelay(d time.Duration) { p.SetDelays(d, d) }

// SetDelays changes the delay of chunks read from now on, client to server
// (up) and server to client (down) separately: SetDelays(time.Hour, 0)
// holds everything the client sends while the server's replies still
// flow.
func (p *Proxy) SetDelays(up, down time.Duration) {
	p.up.Store(int64(up))
	p.down.Store(int64(down))
}

// CutAfter makes the proxy drop any connection once it has carried more
// than n bytes from client to server (counting each connection on its
// own). Zero turns it off.
func (p *Proxy) CutAfter(n int64) { p.cutAfter.Store(n) }

// Accepted reports how many connections the proxy has accepted so far.
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

// Cut drops every connection open now, both sides at once.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for l := range p.conns {
		l.close()
	}
}

// Close stops listening, drops every connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	var err error
	p.once.Do(func() {
		close(p.done)
		err = p.ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		select {
		case <-p.done:
			p.mu.Unlock()
			l.close()
			return
		default:
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s, true)
		go p.pipe(l, s, c, false)
	}
}

type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, holding each chunk for the delay. A writer
// goroutine sends chunks when they are due, so a burst costs one delay,
// not one per chunk.
func (p *Proxy) pipe(l *link, src, dst net.Conn, up bool) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
	}()
	q := make(chan chunk, 4096)
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		for c := range q {
			if d := time.Until(c.due); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-p.done:
					t.Stop()
					l.close()
					return
				}
			}
			if _, err := dst.Write(c.data); err != nil {
				l.close()
				return
			}
		}
		// The source ended cleanly: pass the half-close on.
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	buf := make([]byte, 32<<10)
read:
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if up {
				total := l.up.Add(int64(n))
				if limit := p.cutAfter.Load(); limit > 0 && total > limit {
					l.close()
					break
				}
			}
			delay := p.down.Load()
			if up {
				delay = p.up.Load()
			}
			select {
			case q <- chunk{data: append([]byte(nil), buf[:n]...), due: time.Now().Add(time.Duration(delay))}:
			case <-wdone: // the writer gave up: the link is closed
				break read
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				l.close()
			}
			break
		}
	}
	close(q)
	<-wdone
	if l.finished.Add(1) == 2 {
		l.close()
	}
}
