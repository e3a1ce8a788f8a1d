package gateway

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// silentConns is a listener that remembers which of its connections have
// not sent a byte yet, so that shutdown can close them: fasthttp marks a
// connection active before its first request arrives, and would wait out
// the shutdown timeout on a browser's speculative connection.
type silentConns struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func newSilentConns(ln net.Listener) *silentConns {
	return &silentConns{Listener: ln, conns: map[*trackedConn]struct{}{}}
}

func (l *silentConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l, accepted: time.Now()}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

// closeSilent closes the connections that have sent nothing in the grace
// period since they were accepted; it returns how many.
func (l *silentConns) closeSilent(grace time.Duration) int {
	now := time.Now()
	var silent []*trackedConn
	l.mu.Lock()
	for c := range l.conns {
		if !c.spoke.Load() && now.Sub(c.accepted) >= grace {
			silent = append(silent, c)
		}
	}
	l.mu.Unlock()
	for _, c := range silent {
		_ = c.Close()
	}
	return len(silent)
}

// trackedConn is a connection of silentConns.
type trackedConn struct {
	net.Conn
	l        *silentConns
	accepted time.Time
	spoke    atomic.Bool // a byte has been read
}

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && !c.spoke.Load() {
		c.spoke.Store(true)
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.l.mu.Lock()
	delete(c.l.conns, c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
