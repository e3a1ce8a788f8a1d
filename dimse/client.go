package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/medimint/medimint/dicom"
)

// ProposedContext is a presentation context an SCU proposes.
type ProposedContext struct {
	AbstractSyntax   string
	TransferSyntaxes []string
	// SCPRole asks for the SCP role on this abstract syntax (a storage
	// SOP class received through C-GET).
	SCPRole bool
}

// ClientConfig configures an SCU association.
type ClientConfig struct {
	CallingAE    string
	CalledAE     string
	MaxPDULength uint32 // default DefaultMaxPDULength
	Contexts     []ProposedContext
	TLS          *tls.Config
	// ARTIMTimeout bounds the wait for the association and release
	// responses when ctx has no earlier deadline (default 30s).
	ARTIMTimeout time.Duration
	Logger       *slog.Logger
}

// Client is an association opened as SCU.
type Client struct {
	u      *ulConn
	ac     *AssociatePDU
	nextID uint16
}

// ErrNoContext is returned when no accepted presentation context fits an
// operation.
var ErrNoContext = errors.New("dimse: no accepted presentation context")

// Associate opens an association with the SCP at addr.
func Associate(ctx context.Context, addr string, cfg ClientConfig) (*Client, error) {
	if cfg.MaxPDULength == 0 {
		cfg.MaxPDULength = DefaultMaxPDULength
	}
	if cfg.ARTIMTimeout <= 0 {
		cfg.ARTIMTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if len(cfg.Contexts) > 128 {
		return nil, fmt.Errorf("dimse: %d presentation contexts proposed, at most 128", len(cfg.Contexts))
	}
	m := machine{state: sta1, requestor: true}
	if _, err := m.step(evt1, 0); err != nil { // AE-1
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dimse: connect to %s: %w", addr, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	if cfg.TLS != nil {
		tc := tls.Client(conn, cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("dimse: TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	u := newULConn(conn, cfg.Logger.With("peer", addr, "called_ae", cfg.CalledAE), context.Background())
	u.m = m
	u.maxPData = cfg.MaxPDULength
	u.artim = cfg.ARTIMTimeout
	u.readTimeout = cfg.ARTIMTimeout
	u.startReader()

	rq := &AssociatePDU{
		Type:      PDUAssociateRQ,
		CalledAE:  cfg.CalledAE,
		CallingAE: cfg.CallingAE,
		UserInfo: UserInfo{
			MaxLength:                 cfg.MaxPDULength,
			ImplementationClassUID:    dicom.ImplementationClassUID,
			ImplementationVersionName: dicom.ImplementationVersionName,
		},
	}
	roles := map[string]bool{}
	for i, pc := range cfg.Contexts {
		rq.Contexts = append(rq.Contexts, PresentationContext{ID: uint8(2*i + 1), AbstractSyntax: pc.AbstractSyntax, TransferSyntaxes: pc.TransferSyntaxes})
		if pc.SCPRole && !roles[pc.AbstractSyntax] {
			roles[pc.AbstractSyntax] = true
			rq.UserInfo.Roles = append(rq.UserInfo.Roles, RoleSelection{SOPClassUID: pc.AbstractSyntax, SCU: false, SCP: true})
		}
	}
	if _, err := u.m.step(evt2, 0); err != nil { // AE-2
		u.close()
		return nil, err
	}
	if err := u.write(rq.Encode(nil)); err != nil {
		return nil, err
	}
	u.startARTIM()
	in, ev, err := u.recv(ctx, waitARTIM)
	u.stopARTIM()
	switch ev {
	case evt3:
		ac, derr := DecodeAssociate(PDUAssociateAC, in.body)
		u.recycle(in.buf)
		if derr != nil {
			return nil, u.fail(evt19, AbortReasonInvalidParameter, derr)
		}
		if _, err := u.m.step(ev, 0); err != nil { // AE-3
			return nil, u.fail(evt19, AbortReasonUnexpectedPDU, err)
		}
		c := &Client{u: u, ac: ac}
		if err := c.accepted(rq, ac); err != nil {
			return nil, u.abort(err)
		}
		u.peerMax = ac.UserInfo.MaxLength
		return c, nil
	case evt4:
		rj, derr := DecodeReject(in.body)
		u.recycle(in.buf)
		u.m.step(ev, 0) // AE-4
		u.close()
		if derr != nil {
			return nil, derr
		}
		return nil, rj
	case evt16:
		u.recycle(in.buf)
		u.m.step(ev, 0)
		u.close()
		if a, err := DecodeAbort(in.body); err == nil {
			return nil, a
		}
		return nil, errPeerAborted
	case evt15, evt17, evt18:
		if ev == evt18 {
			ev = evt15
		}
		return nil, u.fail(ev, 0, err)
	default:
		if in.buf != nil {
			u.recycle(in.buf)
		}
		if err == nil {
			err = fmt.Errorf("%w: %s while awaiting A-ASSOCIATE-AC", errProtocol, in.t)
		}
		return nil, u.fail(evt19, AbortReasonUnexpectedPDU, err)
	}
}

// accepted records the contexts the AC accepted.
func (c *Client) accepted(rq, ac *AssociatePDU) error {
	proposed := map[uint8]PresentationContext{}
	for _, pc := range rq.Contexts {
		proposed[pc.ID] = pc
	}
	scp := map[string]bool{}
	for _, r := range ac.UserInfo.Roles {
		scp[r.SOPClassUID] = r.SCP
	}
	for _, pc := range ac.Contexts {
		p, ok := proposed[pc.ID]
		if !ok || pc.Result != ResultAcceptance {
			continue
		}
		ts, ok := dicom.LookupTransferSyntax(pc.TransferSyntaxes[0])
		if !ok || !contains(p.TransferSyntaxes, ts.UID) {
			return fmt.Errorf("%w: context %d accepted with transfer syntax %q we did not propose", errProtocol, pc.ID, pc.TransferSyntaxes[0])
		}
		c.u.contexts[pc.ID] = &acceptedContext{ID: pc.ID, AbstractSyntax: p.AbstractSyntax, TransferSyntax: ts, SCURole: true, SCPRole: scp[p.AbstractSyntax]}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Accepted reports whether a presentation context for abstract syntax
// (with transfer syntax ts, if not empty) was accepted.
func (c *Client) Accepted(abstract, ts string) bool { return c.context(abstract, ts) != nil }

func (c *Client) context(abstract, ts string) *acceptedContext {
	var best *acceptedContext
	for _, pc := range c.u.contexts {
		if pc.AbstractSyntax == abstract && (ts == "" || pc.TransferSyntax.UID == ts) && (best == nil || pc.ID < best.ID) {
			best = pc
		}
	}
	return best
}

func (c *Client) msgID() uint16 {
	c.nextID++
	if c.nextID == 0 {
		c.nextID = 1
	}
	return c.nextID
}

// response reads the next response to msgID with command field field; a
// response data set, if any, is returned.
func (c *Client) response(ctx context.Context, msgID, field uint16) (*command, []byte, error) {
	cmd, pc, err := c.u.readCommand(ctx, waitReply)
	if err != nil {
		return nil, nil, err
	}
	if cmd.Field != field || cmd.RespondedTo != msgID {
		return nil, nil, c.u.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("%s for message %d while awaiting %s for %d", commandName(cmd.Field), cmd.RespondedTo, commandName(field), msgID))
	}
	var data []byte
	if cmd.DataSet {
		if data, err = c.u.readData(ctx, pc.ID, maxIdentifierLength); err != nil {
			return nil, nil, err
		}
	}
	return cmd, data, nil
}

func statusOf(cmd *command) Status {
	return Status{Code: cmd.Status, ErrorComment: cmd.ErrorComment, OffendingElements: cmd.OffendingElements}
}

// Echo performs a C-ECHO.
func (c *Client) Echo(ctx context.Context) error {
	pc := c.context(dicom.VerificationSOPClass, "")
	if pc == nil {
		return fmt.Errorf("%w for Verification", ErrNoContext)
	}
	id := c.msgID()
	if err := c.u.sendMessage(pc.ID, &command{Field: cEchoRQ, MessageID: id, AffectedSOPClass: dicom.VerificationSOPClass}, nil); err != nil {
		return err
	}
	rsp, _, err := c.response(ctx, id, cEchoRSP)
	if err != nil {
		return err
	}
	if rsp.Status != StatusSuccess {
		return &StatusError{statusOf(rsp)}
	}
	return nil
}

// StoreOptions are the optional fields of a C-STORE-RQ.
type StoreOptions struct {
	Priority                uint16
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// Store sends one instance with C-STORE: data is the data set (no File
// Meta) encoded in transferSyntax. A failure status is returned with a
// *StatusError; warnings come back as the Status with a nil error.
func (c *Client) Store(ctx context.Context, sopClass, sopInstance, transferSyntax string, data io.Reader, opts ...StoreOptions) (Status, error) {
	pc := c.context(sopClass, transferSyntax)
	if pc == nil {
		return Status{}, fmt.Errorf("%w for %s in %s", ErrNoContext, sopClass, transferSyntax)
	}
	return c.storeOn(ctx, pc.ID, sopClass, sopInstance, data, opts...)
}

func (c *Client) storeOn(ctx context.Context, pcid uint8, sopClass, sopInstance string, data io.Reader, opts ...StoreOptions) (Status, error) {
	id := c.msgID()
	cmd := &command{Field: cStoreRQ, MessageID: id, AffectedSOPClass: sopClass, AffectedSOPInstance: sopInstance}
	if len(opts) > 0 {
		o := opts[0]
		cmd.Priority = o.Priority
		if o.MoveOriginatorAE != "" {
			cmd.HasMoveOriginator, cmd.MoveOriginatorAE, cmd.MoveOriginatorID = true, o.MoveOriginatorAE, o.MoveOriginatorMessageID
		}
	}
	if err := c.u.sendMessage(pcid, cmd, data); err != nil {
		return Status{}, err
	}
	rsp, _, err := c.response(ctx, id, cStoreRSP)
	if err != nil {
		return Status{}, err
	}
	st := statusOf(rsp)
	if IsFailure(st.Code) {
		return st, &StatusError{st}
	}
	return st, nil
}

// Find performs a C-FIND in the information model (e.g.
// dicom.StudyRootQueryRetrieveFind) and calls fn for every match. If fn
// returns an error, Find sends a C-CANCEL and returns that error once the
// SCP has answered.
func (c *Client) Find(ctx context.Context, model string, identifier *dicom.Dataset, fn func(*dicom.Dataset) error) (Status, error) {
	pc := c.context(model, "")
	if pc == nil {
		return Status{}, fmt.Errorf("%w for %s", ErrNoContext, model)
	}
	id := c.msgID()
	body, err := encodeDataset(identifier, pc.TransferSyntax)
	if err != nil {
		return Status{}, err
	}
	if err := c.u.sendMessage(pc.ID, &command{Field: cFindRQ, MessageID: id, AffectedSOPClass: model}, byteReader(body)); err != nil {
		return Status{}, err
	}
	var fnErr error
	for {
		rsp, data, err := c.response(ctx, id, cFindRSP)
		if err != nil {
			return Status{}, err
		}
		st := statusOf(rsp)
		if !IsPending(st.Code) {
			if fnErr != nil {
				return st, fnErr
			}
			if IsFailure(st.Code) {
				return st, &StatusError{st}
			}
			return st, nil
		}
		if fnErr != nil || data == nil {
			continue
		}
		ds, err := decodeDataset(data, pc.TransferSyntax)
		if err == nil {
			err = fn(ds)
		}
		if err != nil {
			fnErr = err
			if err := c.u.sendMessage(pc.ID, &command{Field: cCancelRQ, RespondedTo: id}, nil); err != nil {
				return Status{}, err
			}
		}
	}
}

// Release releases the association (A-RELEASE) and closes it.
func (c *Client) Release(ctx context.Context) error {
	u := c.u
	if _, err := u.m.step(evt11, 0); err != nil { // AR-1
		u.close()
		return err
	}
	if err := u.write(encodeShort(PDUReleaseRQ, 0, 0, 0)); err != nil {
		return err
	}
	u.startARTIM()
	for {
		u.releaseBuf()
		u.pending = nil
		in, ev, err := u.recv(ctx, waitARTIM)
		if in.buf != nil && ev != evt17 {
			u.recycle(in.buf)
		}
		switch ev {
		case evt13: // AR-3 (Sta7) or AR-10 (Sta10)
			act, serr := u.m.step(ev, 0)
			if serr != nil {
				return u.fail(evt19, AbortReasonUnexpectedPDU, serr)
			}
			if act == ar3 {
				u.close()
				return nil
			}
		case evt12: // release collision: AR-8, then answer as requestor (AR-9)
			if _, serr := u.m.step(ev, 0); serr != nil {
				return u.fail(evt19, AbortReasonUnexpectedPDU, serr)
			}
			if _, serr := u.m.step(evt14, 0); serr != nil {
				return u.fail(evt15, 0, serr)
			}
			if err := u.write(encodeShort(PDUReleaseRP, 0, 0, 0)); err != nil {
				return err
			}
		case evt10: // AR-6: data still in flight is dropped
			if _, serr := u.m.step(ev, 0); serr != nil {
				return u.fail(evt19, AbortReasonUnexpectedPDU, serr)
			}
		case evt16:
			u.m.step(ev, 0)
			u.close()
			return errPeerAborted
		case evt18, evt15:
			return u.fail(evt15, 0, err)
		default:
			if err == nil {
				err = fmt.Errorf("%w: %s while awaiting A-RELEASE-RP", errProtocol, in.t)
			}
			return u.fail(ev, AbortReasonUnexpectedPDU, err)
		}
	}
}

// Abort aborts the association (A-ABORT) and closes it.
func (c *Client) Abort() error {
	if c.u.m.state == sta1 {
		c.u.close()
		return nil
	}
	c.u.artim = min(c.u.artim, time.Second)
	c.u.abort(errLocalAbort)
	return nil
}

// MaxPDULength reports the peer's maximum P-DATA-TF length.
func (c *Client) MaxPDULength() uint32 { return c.u.peerMax }

type bytesReader struct {
	b []byte
}

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func byteReader(b []byte) io.Reader { return &bytesReader{b} }
