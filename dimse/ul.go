package dimse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/medimint/medimint/dicom"
)

// ulConn is one transport connection speaking the Upper Layer protocol,
// on either side. A reader goroutine receives PDUs (so an A-ABORT or a
// C-CANCEL is seen while the owner is busy); the owning goroutine runs the
// state machine, consumes PDVs and is the only writer.
type ulConn struct {
	conn net.Conn
	log  *slog.Logger
	m    machine

	maxPData    uint32 // our maximum P-DATA-TF length (what we told the peer)
	peerMax     uint32 // the peer's maximum (0: unlimited)
	artim       time.Duration
	idle        time.Duration
	readTimeout time.Duration // to receive the rest of a PDU once it has started

	contexts map[uint8]*acceptedContext

	in        chan inbound
	free      chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	readerWG  sync.WaitGroup

	// peerCtx is cancelled by the reader when the peer aborts or the
	// transport fails, so handlers blocked in I/O give up promptly.
	peerCtx    context.Context
	peerCancel context.CancelFunc

	// hard, when done, aborts the association whatever it is doing; drain,
	// when done, aborts it at the next message boundary (server shutdown).
	hard  <-chan struct{}
	drain <-chan struct{}

	artimDeadline time.Time // zero when ARTIM is not running
	readerExited  bool
	stash         *inbound // a PDU taken by poll, for the next recv

	pending []PDV  // PDVs received but not yet consumed
	curBuf  []byte // buffer behind pending, recycled when consumed

	wbuf []byte
}

// acceptedContext is a presentation context accepted on the association.
type acceptedContext struct {
	ID             uint8
	AbstractSyntax string
	TransferSyntax dicom.TransferSyntax
	// SCURole/SCPRole: the roles the association-requestor plays for the
	// abstract syntax (SCU by default; SCP for C-GET's storage contexts).
	SCURole, SCPRole bool
}

type inbound struct {
	t    PDUType
	body []byte
	buf  []byte
	err  error
}

// waitKind selects which timers govern a wait for the peer.
type waitKind uint8

const (
	waitARTIM   waitKind = iota // Sta2, Sta13, Sta5, Sta7: the ARTIM timer
	waitIdle                    // between messages: idle timeout, shutdown drain
	waitMessage                 // inside a message: idle timeout
	waitReply                   // SCU waiting for a response: the caller's ctx
)

var (
	// errAssociationEnded is returned once the association is over
	// (released, aborted or the transport closed).
	errAssociationEnded = errors.New("dimse: association ended")
	errReleased         = fmt.Errorf("%w: released", errAssociationEnded)
	errPeerAborted      = fmt.Errorf("%w: aborted by peer", errAssociationEnded)
	errLocalAbort       = fmt.Errorf("%w: aborted", errAssociationEnded)
	errTransportClosed  = fmt.Errorf("%w: transport closed", errAssociationEnded)
	errProtocol         = fmt.Errorf("%w: protocol error", errAssociationEnded)
	errTimeout          = fmt.Errorf("%w: timeout", errAssociationEnded)
)

const (
	pduBuffers      = 4
	defaultPeerMax  = 1 << 20 // PDU size we send when the peer sets no limit
	drainCloseLimit = 1 << 20
)

func newULConn(conn net.Conn, log *slog.Logger, parent context.Context) *ulConn {
	u := &ulConn{
		conn:     conn,
		log:      log,
		in:       make(chan inbound, pduBuffers-2),
		free:     make(chan []byte, pduBuffers),
		closed:   make(chan struct{}),
		contexts: map[uint8]*acceptedContext{},
		m:        machine{state: sta1},
	}
	for range pduBuffers {
		u.free <- nil
	}
	u.peerCtx, u.peerCancel = context.WithCancel(parent)
	return u
}

// startReader starts the goroutine receiving PDUs.
func (u *ulConn) startReader() {
	u.readerWG.Add(1)
	go u.readLoop()
}

func (u *ulConn) readLoop() {
	defer u.readerWG.Done()
	br := bufio.NewReaderSize(u.conn, 64<<10)
	for {
		var buf []byte
		select {
		case buf = <-u.free:
		case <-u.closed:
			return
		}
		in := u.readOne(br, buf)
		if in.err != nil || in.t == PDUAbort {
			u.peerCancel()
		}
		select {
		case u.in <- in:
		case <-u.closed:
			return
		}
		if in.err != nil {
			return
		}
	}
}

func (u *ulConn) readOne(br *bufio.Reader, buf []byte) inbound {
	// Wait for the first byte without a deadline: the owner's timers
	// (ARTIM, idle) decide how long silence may last, and they close the
	// connection to end this read. Once a PDU has started, the rest must
	// arrive within readTimeout, so a trickling peer cannot hold us.
	if err := u.conn.SetReadDeadline(time.Time{}); err != nil {
		return inbound{buf: buf, err: err}
	}
	var hdr [pduHeaderLen]byte
	b, err := br.ReadByte()
	if err != nil {
		return inbound{buf: buf, err: err}
	}
	hdr[0] = b
	if u.readTimeout > 0 {
		if err := u.conn.SetReadDeadline(time.Now().Add(u.readTimeout)); err != nil {
			return inbound{buf: buf, err: err}
		}
	}
	if _, err := io.ReadFull(br, hdr[1:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return inbound{buf: buf, err: err}
	}
	t, body, err := readPDUBody(br, hdr, buf, u.maxPData)
	return inbound{t: t, body: body, buf: body[:0], err: err}
}

// close tears the connection down and waits for the reader to exit.
func (u *ulConn) close() {
	u.closeOnce.Do(func() {
		close(u.closed)
		u.conn.Close()
		u.peerCancel()
	})
	u.readerWG.Wait()
}

// recv waits for the next PDU or timer event and returns it with its
// state machine event. Errors from the reader map to Evt17 (transport
// closed) or Evt19 (invalid PDU); local conditions (idle timeout,
// shutdown, cancelled context) map to Evt15, a local A-ABORT request.
func (u *ulConn) recv(ctx context.Context, w waitKind) (inbound, event, error) {
	if u.stash != nil {
		in := *u.stash
		u.stash = nil
		return u.classify(in)
	}
	if u.readerExited {
		return inbound{}, evt17, errTransportClosed
	}
	// What has arrived is handled before timers and shutdown are looked at:
	// a request already received is served.
	select {
	case in := <-u.in:
		return u.classify(in)
	default:
	}
	var timer <-chan time.Time
	var why error
	switch {
	case w == waitARTIM || !u.artimDeadline.IsZero():
		if !u.artimDeadline.IsZero() {
			t := time.NewTimer(time.Until(u.artimDeadline))
			defer t.Stop()
			timer = t.C
		}
		why = errTimeout
	case (w == waitIdle || w == waitMessage) && u.idle > 0:
		t := time.NewTimer(u.idle)
		defer t.Stop()
		timer = t.C
		why = errTimeout
	}
	var drain <-chan struct{}
	if w == waitIdle {
		drain = u.drain
	}
	done := ctx.Done()
	select {
	case in := <-u.in:
		return u.classify(in)
	case <-timer:
		if w == waitARTIM || !u.artimDeadline.IsZero() {
			return inbound{}, evt18, fmt.Errorf("%w: ARTIM expired in %s", errTimeout, u.m.state)
		}
		return inbound{}, evt15, fmt.Errorf("%w: idle for %s", why, u.idle)
	case <-drain:
		return inbound{}, evt15, fmt.Errorf("%w: server shutting down", errLocalAbort)
	case <-u.hard:
		return inbound{}, evt15, fmt.Errorf("%w: server shutting down", errLocalAbort)
	case <-done:
		return inbound{}, evt15, fmt.Errorf("%w: %w", errLocalAbort, ctx.Err())
	}
}

// classify maps a received PDU (or reader error) to its event.
func (u *ulConn) classify(in inbound) (inbound, event, error) {
	if in.err != nil {
		u.readerExited = true
		if errors.Is(in.err, ErrPDUTooLong) {
			return in, evt19, fmt.Errorf("%w: %w", errProtocol, in.err)
		}
		var ne net.Error
		if errors.As(in.err, &ne) && ne.Timeout() {
			return in, evt15, fmt.Errorf("%w: PDU not received in time: %w", errTimeout, in.err)
		}
		return in, evt17, fmt.Errorf("%w: %w", errTransportClosed, in.err)
	}
	return in, pduEvent(in.t), nil
}

// recycle returns a consumed PDU buffer to the reader.
func (u *ulConn) recycle(buf []byte) {
	select {
	case u.free <- buf:
	default:
	}
}

func (u *ulConn) startARTIM() { u.artimDeadline = time.Now().Add(u.artim) }
func (u *ulConn) stopARTIM()  { u.artimDeadline = time.Time{} }

// write sends one encoded PDU. A write error means the transport is gone.
func (u *ulConn) write(b []byte) error {
	if u.idle > 0 {
		u.conn.SetWriteDeadline(time.Now().Add(u.idle))
	}
	if _, err := u.conn.Write(b); err != nil {
		u.m.state = sta1
		u.close()
		return fmt.Errorf("%w: write: %w", errTransportClosed, err)
	}
	return nil
}

// fail applies a terminating event (abort, transport closed, ARTIM, invalid
// PDU) with the A-ABORT reason to use if one is sent, then waits in Sta13
// for the peer to close. It returns cause.
func (u *ulConn) fail(ev event, reason uint8, cause error) error {
	act, err := u.m.step(ev, sta13)
	if err != nil {
		u.log.Debug("dimse: unexpected event", "err", err)
		u.m.state = sta1
		u.close()
		return cause
	}
	u.perform(act, reason)
	u.awaitClose()
	return cause
}

// perform carries out the abort-family actions.
func (u *ulConn) perform(act action, reason uint8) {
	switch act {
	case aa1:
		u.write((&AbortPDU{Source: AbortSourceServiceUser}).Encode())
		u.startARTIM()
	case aa7, aa8:
		u.write((&AbortPDU{Source: AbortSourceServiceProvider, Reason: reason}).Encode())
		u.startARTIM()
	case aa2, aa3, aa4, aa5, ar5, ar3, ae4:
		u.stopARTIM()
		u.close()
	case aa6:
	}
}

// awaitClose waits in Sta13 for the peer to close the transport, or ARTIM.
// PDUs that still arrive are ignored (AA-6) or answered with A-ABORT (AA-7).
func (u *ulConn) awaitClose() {
	for u.m.state == sta13 {
		if u.readerExited {
			// The reader stopped on a protocol error: read out what the
			// peer still sends (bounded) so closing does not reset the
			// connection before it has read our A-ABORT.
			u.conn.SetReadDeadline(u.artimDeadline)
			io.Copy(io.Discard, io.LimitReader(u.conn, drainCloseLimit))
			u.m.state = sta1
			u.close()
			return
		}
		in, ev, _ := u.recv(context.Background(), waitARTIM)
		if in.buf != nil {
			u.recycle(in.buf)
		}
		if ev == evt15 {
			ev = evt18 // shutdown while waiting for close: give up as on ARTIM
		}
		act, err := u.m.step(ev, sta13)
		if err != nil {
			u.m.state = sta1
		}
		u.perform(act, AbortReasonUnexpectedPDU)
	}
	u.close()
}

// nextPDV returns the next PDV of the association, receiving P-DATA-TF
// PDUs as needed and handling every other PDU through the state machine.
// An A-RELEASE-RQ is answered when it arrives between messages (waitIdle);
// any other interruption ends the association with an error wrapping
// errAssociationEnded.
func (u *ulConn) nextPDV(ctx context.Context, w waitKind) (PDV, error) {
	for len(u.pending) == 0 {
		u.releaseBuf()
		in, ev, err := u.recv(ctx, w)
		if err := u.handle(in, ev, err, w); err != nil {
			return PDV{}, err
		}
	}
	p := u.pending[0]
	u.pending = u.pending[1:]
	return p, nil
}

func (u *ulConn) releaseBuf() {
	if u.curBuf != nil {
		u.recycle(u.curBuf)
		u.curBuf = nil
	}
}

// poll moves, without blocking, a P-DATA-TF PDU already received into the
// (empty) pending queue; any other PDU is kept for the next recv. Long
// operations call it between responses to see a C-CANCEL.
func (u *ulConn) poll() error {
	if len(u.pending) > 0 || u.stash != nil {
		return nil
	}
	select {
	case raw := <-u.in:
		in, ev, err := u.classify(raw)
		if ev != evt10 {
			u.stash = &raw
			return nil
		}
		u.releaseBuf()
		return u.handle(in, ev, err, waitMessage)
	default:
		return nil
	}
}

// cancelPending reports whether the next queued PDV is a C-CANCEL-RQ for
// msgID, and consumes it if so.
func (u *ulConn) cancelPending(msgID uint16) bool {
	if len(u.pending) == 0 || !u.pending[0].Command || !u.pending[0].Last {
		return false
	}
	cmd, err := decodeCommand(u.pending[0].Data)
	if err != nil || cmd.Field != cCancelRQ || cmd.RespondedTo != msgID {
		return false
	}
	u.pending = u.pending[1:]
	return true
}

// handle processes one received event while data transfer is due.
func (u *ulConn) handle(in inbound, ev event, err error, w waitKind) error {
	switch ev {
	case evt10:
		if _, serr := u.m.step(ev, 0); serr != nil || (u.m.state != sta6 && u.m.state != sta7) {
			return u.fail(evt19, AbortReasonUnexpectedPDU, fmt.Errorf("%w: P-DATA-TF in %s", errProtocol, u.m.state))
		}
		u.curBuf = in.buf
		perr := ForPDVs(in.body, func(p PDV) error {
			u.pending = append(u.pending, p)
			return nil
		})
		if perr != nil {
			u.pending = u.pending[:0]
			return u.fail(evt19, AbortReasonInvalidParameter, fmt.Errorf("%w: %w", errProtocol, perr))
		}
		return nil
	case evt12:
		u.recycle(in.buf)
		if decodeShort(PDUReleaseRQ, in.body) != nil {
			return u.fail(evt19, AbortReasonInvalidParameter, fmt.Errorf("%w: malformed A-RELEASE-RQ", errProtocol))
		}
		if w != waitIdle {
			// A release in the middle of a message: the peer broke
			// the message off. End it rather than lose data silently.
			return u.fail(evt19, AbortReasonUnexpectedPDU, fmt.Errorf("%w: A-RELEASE-RQ inside a message", errProtocol))
		}
		if _, err := u.m.step(evt12, 0); err != nil {
			return u.fail(evt19, AbortReasonUnexpectedPDU, err)
		}
		return u.respondRelease()
	case evt16:
		u.recycle(in.buf)
		cause := errPeerAborted
		if a, err := DecodeAbort(in.body); err == nil {
			cause = fmt.Errorf("%w: %w", errPeerAborted, a)
		}
		return u.fail(ev, 0, cause)
	case evt15, evt17, evt18:
		return u.fail(ev, AbortReasonNotSpecified, err)
	case evt19:
		if in.buf != nil {
			u.recycle(in.buf)
		}
		reason := uint8(AbortReasonUnrecognizedPDU)
		if errors.Is(err, ErrPDUTooLong) {
			reason = AbortReasonInvalidParameter
		}
		if err == nil {
			err = fmt.Errorf("%w: unrecognized PDU type 0x%02X", errProtocol, uint8(in.t))
		}
		return u.fail(ev, reason, err)
	default:
		// A-ASSOCIATE-* or A-RELEASE-RP where data transfer is due.
		u.recycle(in.buf)
		return u.fail(ev, AbortReasonUnexpectedPDU, fmt.Errorf("%w: unexpected %s in %s", errProtocol, in.t, u.m.state))
	}
}

// respondRelease answers an A-RELEASE-RQ received in Sta6 (now Sta8).
func (u *ulConn) respondRelease() error {
	if _, err := u.m.step(evt14, 0); err != nil {
		return u.fail(evt15, 0, err)
	}
	if err := u.write(encodeShort(PDUReleaseRP, 0, 0, 0)); err != nil {
		return err
	}
	u.startARTIM()
	u.awaitClose()
	return errReleased
}

// abort sends an A-ABORT (service user) and closes: Evt15.
func (u *ulConn) abort(cause error) error {
	if u.m.state == sta1 {
		u.close()
		return cause
	}
	return u.fail(evt15, 0, cause)
}

// protocolError aborts the association as service provider (Evt19).
func (u *ulConn) protocolError(reason uint8, cause error) error {
	return u.fail(evt19, reason, fmt.Errorf("%w: %w", errProtocol, cause))
}

// readCommand reassembles the next command set; it returns the command and
// its presentation context.
func (u *ulConn) readCommand(ctx context.Context, w waitKind) (*command, *acceptedContext, error) {
	var buf []byte
	var pcid uint8
	for {
		p, err := u.nextPDV(ctx, w)
		if err != nil {
			return nil, nil, err
		}
		if !p.Command {
			return nil, nil, u.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("data PDV where a command was expected"))
		}
		if buf == nil {
			pcid = p.ContextID
		} else if p.ContextID != pcid {
			return nil, nil, u.protocolError(AbortReasonInvalidParameter, fmt.Errorf("command fragments on contexts %d and %d", pcid, p.ContextID))
		}
		if len(buf)+len(p.Data) > maxCommandLength {
			return nil, nil, u.protocolError(AbortReasonInvalidParameter, fmt.Errorf("command set longer than %d bytes", maxCommandLength))
		}
		buf = append(buf, p.Data...)
		w = waitMessage
		if p.Last {
			break
		}
	}
	pc := u.contexts[pcid]
	if pc == nil {
		return nil, nil, u.protocolError(AbortReasonInvalidParameter, fmt.Errorf("presentation context %d was not accepted", pcid))
	}
	// Skip the group length: decodeCommand reads it like any element.
	cmd, err := decodeCommand(buf)
	if err != nil {
		return nil, nil, u.protocolError(AbortReasonInvalidParameter, err)
	}
	return cmd, pc, nil
}

// readData reads a whole (small) data set into memory: C-FIND, C-MOVE and
// C-GET identifiers, responses. Data sets to store use dataReader.
func (u *ulConn) readData(ctx context.Context, pcid uint8, limit int) ([]byte, error) {
	var buf []byte
	for {
		p, err := u.nextPDV(ctx, waitMessage)
		if err != nil {
			return nil, err
		}
		if p.Command || p.ContextID != pcid {
			return nil, u.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("PDV (command %v, context %d) inside the data set on context %d", p.Command, p.ContextID, pcid))
		}
		if len(buf)+len(p.Data) > limit {
			return nil, u.protocolError(AbortReasonInvalidParameter, fmt.Errorf("identifier longer than %d bytes", limit))
		}
		buf = append(buf, p.Data...)
		if p.Last {
			return buf, nil
		}
	}
}

// dataReader streams the data set of the current message: it yields each
// data PDV as it arrives.
type dataReader struct {
	u    *ulConn
	ctx  context.Context
	pcid uint8
	cur  []byte
	last bool
	err  error
	n    int64
}

func (d *dataReader) fill() error {
	for len(d.cur) == 0 {
		if d.err != nil {
			return d.err
		}
		if d.last {
			d.err = io.EOF
			return d.err
		}
		p, err := d.u.nextPDV(d.ctx, waitMessage)
		if err != nil {
			d.err = err
			return err
		}
		if p.Command || p.ContextID != d.pcid {
			d.err = d.u.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("PDV (command %v, context %d) inside the data set on context %d", p.Command, p.ContextID, d.pcid))
			return d.err
		}
		d.cur, d.last = p.Data, p.Last
	}
	return nil
}

func (d *dataReader) Read(p []byte) (int, error) {
	if err := d.fill(); err != nil {
		return 0, err
	}
	n := copy(p, d.cur)
	d.cur = d.cur[n:]
	d.n += int64(n)
	return n, nil
}

// WriteTo hands each fragment to w directly, saving a copy.
func (d *dataReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := d.fill(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		n, err := w.Write(d.cur)
		d.cur = d.cur[n:]
		total += int64(n)
		d.n += int64(n)
		if err != nil {
			return total, err
		}
	}
}

// finish reads and discards what the consumer left unread; it reports how
// many bytes that was. An error means the association ended.
func (d *dataReader) finish() (int64, error) {
	n, err := io.Copy(io.Discard, struct{ io.Reader }{d})
	if err == nil || err == io.EOF {
		if d.err != nil && d.err != io.EOF {
			return n, d.err
		}
		return n, nil
	}
	return n, err
}

// pdataWriter fragments a message part (command or data set) into
// P-DATA-TF PDUs of at most the peer's maximum length, one PDV each.
type pdataWriter struct {
	u       *ulConn
	pcid    uint8
	command bool
	buf     []byte // header (12 bytes) + payload
	max     int    // payload capacity
	err     error
}

const pdataHeaderLen = 12 // PDU header 6 + PDV item length 4 + context ID + MCH

func (u *ulConn) newPDataWriter(pcid uint8, command bool) *pdataWriter {
	max := int(u.peerMax)
	if max == 0 || max > defaultPeerMax {
		max = defaultPeerMax
	}
	max -= 6 // PDV item header within the PDU's variable field
	if cap(u.wbuf) < pdataHeaderLen+max {
		u.wbuf = make([]byte, 0, pdataHeaderLen+max)
	}
	return &pdataWriter{u: u, pcid: pcid, command: command, buf: u.wbuf[:pdataHeaderLen], max: max}
}

func (w *pdataWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if w.err != nil {
			return n, w.err
		}
		if len(w.buf)-pdataHeaderLen == w.max {
			w.flush(false)
			continue
		}
		k := copy(w.buf[len(w.buf):pdataHeaderLen+w.max], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
		n += k
	}
	return n, w.err
}

// ReadFrom fills the PDU payload straight from r.
func (w *pdataWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for w.err == nil {
		if len(w.buf)-pdataHeaderLen == w.max {
			w.flush(false)
			continue
		}
		k, err := r.Read(w.buf[len(w.buf) : pdataHeaderLen+w.max])
		w.buf = w.buf[:len(w.buf)+k]
		total += int64(k)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, w.err
}

func (w *pdataWriter) flush(last bool) {
	if w.err != nil {
		return
	}
	if _, err := w.u.m.step(evt9, 0); err != nil {
		w.err = fmt.Errorf("%w: %w", errProtocol, err)
		return
	}
	n := len(w.buf) - pdataHeaderLen
	AppendPDataHeader(w.buf[:0], PDV{ContextID: w.pcid, Command: w.command, Last: last}, n)
	w.err = w.u.write(w.buf)
	w.buf = w.buf[:pdataHeaderLen]
}

// Close sends the last fragment.
func (w *pdataWriter) Close() error {
	w.flush(true)
	return w.err
}

// sendMessage sends a command and, if data is not nil, its data set.
func (u *ulConn) sendMessage(pcid uint8, cmd *command, data io.Reader) error {
	cmd.DataSet = data != nil
	w := u.newPDataWriter(pcid, true)
	w.Write(cmd.encode())
	if err := w.Close(); err != nil {
		return err
	}
	if data == nil {
		return nil
	}
	w = u.newPDataWriter(pcid, false)
	if _, err := io.Copy(w, data); err != nil {
		if w.err != nil {
			return w.err
		}
		// The source failed mid-message: the message cannot be completed
		// or taken back, so the association has to go.
		return u.abort(fmt.Errorf("%w: reading the data set to send: %w", errLocalAbort, err))
	}
	return w.Close()
}
