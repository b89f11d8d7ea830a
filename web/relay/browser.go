package relay

import (
	"context"
	"errors"
	"time"

	"github.com/coder/websocket"
)

// serveBrowser feeds one browser until it leaves, is too slow, stops
// answering pings, or the relay shuts down (base ends). It sends the
// latest state at once, then each newer one, never more often than
// SendInterval; states that arrive in between are coalesced (the newest
// is sent, the others counted as dropped). It returns the reason the
// connection ended.
func (s *Server) serveBrowser(base context.Context, conn *websocket.Conn) string {
	conn.SetReadLimit(MaxReadBytes)
	ctx, readDone := s.readNothing(conn)
	// Every way out below closes conn, which ends the reader.
	defer func() { <-readDone }()

	pingFailed := make(chan struct{})
	pingDone := make(chan struct{})
	go func() {
		defer close(pingDone)
		s.pinger(ctx, conn, pingFailed)
	}()
	defer func() { <-pingDone }()

	var sent uint64
	var last time.Time
	for {
		seq, msg, changed := s.hub.Latest()
		if seq > sent {
			if wait := s.cfg.SendInterval - s.cfg.Now().Sub(last); !last.IsZero() && wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return gone(conn, pingDone, pingFailed)
				case <-base.Done():
					t.Stop()
					return goingAway(conn)
				case <-t.C:
				}
				// Newer states may have come while waiting: send the newest.
				seq, msg, _ = s.hub.Latest()
			}
			// The states between the last one sent and this one are
			// skipped whether or not the write succeeds; count them before
			// writing, so that whoever reads this message also sees them
			// counted (the count raced the browser's read before).
			if sent > 0 && seq-sent > 1 {
				s.metrics.dropped.Add(float64(seq - sent - 1))
			}
			wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout)
			err := conn.Write(wctx, websocket.MessageText, msg)
			cancel()
			if err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					conn.CloseNow()
					return reasonSlow
				}
				return gone(conn, pingDone, pingFailed)
			}
			s.metrics.sent.Inc()
			sent, last = seq, s.cfg.Now()
			continue
		}
		select {
		case <-ctx.Done():
			return gone(conn, pingDone, pingFailed)
		case <-base.Done():
			return goingAway(conn)
		case <-changed:
		}
	}
}

// gone closes a connection that has ended (a read error alone leaves the
// socket open) and tells why it ended: its pinger found it dead, or the
// browser went away. It waits for the pinger, which ends with the
// connection, so that the two never race.
func gone(conn *websocket.Conn, pingDone, pingFailed <-chan struct{}) string {
	conn.CloseNow()
	<-pingDone
	select {
	case <-pingFailed:
		return reasonPing
	default:
		return reasonClosed
	}
}

// goingAway closes conn because the relay shuts down, saying so, so that
// the page reconnects to the next relay at once.
func goingAway(conn *websocket.Conn) string {
	conn.Close(websocket.StatusGoingAway, "relay shutting down")
	return reasonShutdown
}

// pinger pings conn every PingInterval and closes it when a pong does not
// come within PingTimeout.
func (s *Server) pinger(ctx context.Context, conn *websocket.Conn, failed chan<- struct{}) {
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.PingTimeout)
		err := conn.Ping(pctx)
		cancel()
		if err != nil {
			// A deadline, not a closed connection: the pong did not come
			// (or the ping could not even be written) in time.
			if errors.Is(err, context.DeadlineExceeded) {
				close(failed)
				conn.CloseNow()
			}
			return
		}
	}
}

// readNothing reads conn so that pings, pongs and close frames are
// handled, and closes it if the browser sends a message: the dashboard
// sends none. The context it returns ends when the connection does, and
// done is closed when the reader has returned. (The
// library's own CloseRead does this too, but its close of a misbehaving
// connection waits 15 s on itself.)
func (s *Server) readNothing(conn *websocket.Conn) (context.Context, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cancel()
		if _, _, err := conn.Reader(ctx); err == nil {
			conn.Close(websocket.StatusPolicyViolation, "the live view accepts no messages")
		}
	}()
	return ctx, done
}
