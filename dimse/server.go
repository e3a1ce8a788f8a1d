package dimse

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/medimint/medimint/dicom"
)

// Config configures a Server.
type Config struct {
	// AETitle is the called AE title the server answers to; associations
	// addressed to another title are rejected. Empty accepts any.
	AETitle string
	// Addr is the listen address for ListenAndServe.
	Addr string
	// MaxPDULength is the maximum P-DATA-TF length we receive (default
	// DefaultMaxPDULength).
	MaxPDULength uint32
	// MaxAssociations bounds concurrent associations (default 32); more
	// are rejected with A-ASSOCIATE-RJ transient, local-limit-exceeded.
	MaxAssociations int
	// ARTIMTimeout bounds the wait for the A-ASSOCIATE-RQ after the
	// connection opens and for the peer to close after a release or abort
	// (default 30s); it also bounds the TLS handshake.
	ARTIMTimeout time.Duration
	// IdleTimeout aborts an association when the peer sends nothing for
	// that long while we wait on it (default 5 min).
	IdleTimeout time.Duration
	// ReadTimeout bounds the reception of one PDU once its first byte has
	// arrived (default 60s): a peer trickling bytes is aborted.
	ReadTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits, after its context is
	// cancelled, for in-flight operations to finish before aborting the
	// remaining associations (default 30s).
	ShutdownTimeout time.Duration
	// AllowedCallers maps calling AE titles to the issuing organisation's
	// id. Empty accepts every caller (organisation ""); otherwise an
	// unknown caller is rejected (permanent, calling-AE-not-recognized).
	AllowedCallers map[string]string
	// TLS, when set, makes the server speak DICOM over TLS; client
	// certificates are then required and verified.
	TLS *tls.Config
	// MoveDestinations maps C-MOVE destination AE titles to host:port.
	MoveDestinations map[string]string

	// Store serves the Storage SOP classes (nil: not offered).
	Store StoreHandler
	// Find serves C-FIND for Patient and Study Root (nil: not offered).
	Find FindHandler
	// Retrieve serves C-MOVE and C-GET (nil: not offered).
	Retrieve RetrieveHandler

	Logger *slog.Logger
}

// DefaultMaxPDULength is the maximum P-DATA-TF length we advertise by
// default, dcmtk's: BenchmarkCStore found receive throughput flat from
// here up (storescu never sends more than 128 KiB) and lower at 16 KiB,
// and it keeps the four PDU buffers of an association under 0.5 MiB.
const DefaultMaxPDULength = 116794

func (c *Config) setDefaults() {
	if c.MaxPDULength == 0 {
		c.MaxPDULength = DefaultMaxPDULength
	}
	if c.MaxPDULength > hardMaxPDULength {
		c.MaxPDULength = hardMaxPDULength
	}
	if c.MaxAssociations <= 0 {
		c.MaxAssociations = 32
	}
	if c.ARTIMTimeout <= 0 {
		c.ARTIMTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is a DICOM SCP: it accepts associations and serves C-ECHO,
// C-STORE, C-FIND, C-MOVE and C-GET.
type Server struct {
	cfg Config
	log *slog.Logger

	slots   chan struct{} // association slots (MaxAssociations)
	conns   atomic.Int64  // open connections, bounded separately
	wg      sync.WaitGroup
	drainCh chan struct{}
	// hardCtx is cancelled when the shutdown wait is over: every
	// association still open is aborted.
	hardCtx    context.Context
	hardCancel context.CancelFunc
	once       sync.Once
	tls        *tls.Config
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if len(cfg.AETitle) > 16 || strings.Contains(cfg.AETitle, `\`) {
		return nil, fmt.Errorf("dimse: invalid AE title %q", cfg.AETitle)
	}
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		slots:   make(chan struct{}, cfg.MaxAssociations),
		drainCh: make(chan struct{}),
	}
	s.hardCtx, s.hardCancel = context.WithCancel(context.Background())
	if cfg.TLS != nil {
		t := cfg.TLS.Clone()
		t.ClientAuth = tls.RequireAndVerifyClientCert
		s.tls = t
	}
	return s, nil
}

// ListenAndServe listens on cfg.Addr and serves until ctx is cancelled.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dimse: listen %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts associations on ln until ctx is cancelled. Shutdown then
// stops accepting, lets in-flight operations finish (bounded by
// ShutdownTimeout), aborts the remaining associations and returns nil.
// Serve closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return s.shutdown()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				tempDelay = min(max(2*tempDelay, 5*time.Millisecond), time.Second)
				time.Sleep(tempDelay)
				continue
			}
			ln.Close()
			s.shutdown()
			return fmt.Errorf("dimse: accept: %w", err)
		}
		tempDelay = 0
		// Bound connections, not just associations: each connection costs
		// a goroutine until its A-ASSOCIATE-RQ arrives (at most ARTIM).
		if s.conns.Load() >= int64(2*s.cfg.MaxAssociations+16) {
			conn.Close()
			continue
		}
		s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.conns.Add(-1)
			s.serveConn(conn)
		}()
	}
}

func (s *Server) shutdown() error {
	s.once.Do(func() { close(s.drainCh) })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.hardCancel()
		<-done
	}
	s.hardCancel()
	return nil
}

// association is the server side of one association.
type association struct {
	*ulConn
	srv       *Server
	callingAE string
	calledAE  string
	org       string
	remote    net.Addr
	nextMsgID uint16
}

func (s *Server) serveConn(conn net.Conn) {
	log := s.log.With("remote", conn.RemoteAddr().String())
	u := newULConn(conn, log, s.hardCtx)
	defer func() {
		// A handler's panic ends its association, not the server.
		if r := recover(); r != nil {
			log.Error("dimse: panic serving association", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	u.maxPData = s.cfg.MaxPDULength
	u.artim = s.cfg.ARTIMTimeout
	u.idle = s.cfg.IdleTimeout
	u.readTimeout = s.cfg.ReadTimeout
	u.hard = s.hardCtx.Done()
	u.drain = s.drainCh
	defer u.close()

	if _, err := u.m.step(evt5, 0); err != nil { // AE-5
		return
	}
	u.startARTIM()
	if s.tls != nil {
		tc := tls.Server(conn, s.tls)
		tc.SetDeadline(u.artimDeadline)
		if err := tc.Handshake(); err != nil {
			log.Info("dimse: TLS handshake failed", "err", err)
			conn.Close()
			return
		}
		tc.SetDeadline(time.Time{})
		u.conn = tc
		log = log.With("tls_peer", peerName(tc))
		u.log = log
	}
	u.startReader()

	a := &association{ulConn: u, srv: s, remote: conn.RemoteAddr()}
	if !a.negotiate() {
		return
	}
	defer func() { <-s.slots }()
	a.log.Info("dimse: association accepted", "calling_ae", a.callingAE, "called_ae", a.calledAE, "contexts", len(u.contexts))
	err := a.serve()
	switch {
	case errors.Is(err, errReleased):
		a.log.Info("dimse: association released")
	default:
		a.log.Info("dimse: association ended", "err", err)
	}
}

func peerName(tc *tls.Conn) string {
	st := tc.ConnectionState()
	if len(st.PeerCertificates) > 0 {
		return st.PeerCertificates[0].Subject.String()
	}
	return ""
}

// negotiate runs Sta2 to Sta6 (or to rejection): it waits for the
// A-ASSOCIATE-RQ under ARTIM, checks it and answers AC or RJ. It reports
// whether the association is established; false means the connection has
// been dealt with. On success the association holds a slot.
func (a *association) negotiate() bool {
	in, ev, err := a.recv(context.Background(), waitARTIM)
	if ev != evt6 {
		if in.buf != nil {
			a.recycle(in.buf)
		}
		if err == nil {
			err = fmt.Errorf("%w: %s before A-ASSOCIATE-RQ", errProtocol, in.t)
		}
		if ev == evt15 {
			ev = evt18
		}
		a.log.Info("dimse: no association", "err", a.fail(ev, AbortReasonUnexpectedPDU, err))
		return false
	}
	rq, derr := DecodeAssociate(PDUAssociateRQ, in.body)
	a.recycle(in.buf)
	if derr != nil {
		a.log.Info("dimse: invalid A-ASSOCIATE-RQ", "err", derr)
		a.fail(evt19, AbortReasonInvalidParameter, derr)
		return false
	}
	a.callingAE, a.calledAE = rq.CallingAE, rq.CalledAE
	a.log = a.log.With("calling_ae", rq.CallingAE)
	a.ulConn.log = a.log
	// AE-6: stop ARTIM, examine the request.
	if _, err := a.m.step(evt6, sta3); err != nil {
		a.fail(evt19, AbortReasonUnexpectedPDU, err)
		return false
	}
	a.stopARTIM()

	if rj := a.check(rq); rj != nil {
		a.reject(rj)
		return false
	}
	select {
	case a.srv.slots <- struct{}{}:
	default:
		a.reject(&RejectPDU{Result: RejectTransient, Source: RejectSourceServiceProviderPres, Reason: RejectLocalLimitExceeded})
		return false
	}
	ac := a.srv.accept(rq, a.contexts)
	a.peerMax = rq.UserInfo.MaxLength
	if _, err := a.m.step(evt7, 0); err != nil { // AE-7
		<-a.srv.slots
		a.fail(evt15, 0, err)
		return false
	}
	if err := a.write(ac.Encode(nil)); err != nil {
		<-a.srv.slots
		return false
	}
	return true
}

func (a *association) reject(rj *RejectPDU) {
	a.log.Info("dimse: association rejected", "reason", rejectReasonText(rj.Source, rj.Reason), "result", rj.Result)
	if _, err := a.m.step(evt8, 0); err != nil { // AE-8
		return
	}
	if a.write(rj.Encode()) != nil {
		return
	}
	a.startARTIM()
	a.awaitClose()
}

// check decides whether an A-ASSOCIATE-RQ is acceptable at all.
func (a *association) check(rq *AssociatePDU) *RejectPDU {
	cfg := &a.srv.cfg
	switch {
	case rq.ProtocolVersion&1 == 0:
		return &RejectPDU{Result: RejectPermanent, Source: RejectSourceServiceProviderACSE, Reason: RejectProtocolVersionNotSupported}
	case rq.ApplicationContext != dicom.ApplicationContextName:
		return &RejectPDU{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectApplicationContextNotSupported}
	case cfg.AETitle != "" && rq.CalledAE != cfg.AETitle:
		return &RejectPDU{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectCalledAENotRecognized}
	}
	if len(cfg.AllowedCallers) > 0 {
		org, ok := cfg.AllowedCallers[rq.CallingAE]
		if !ok {
			return &RejectPDU{Result: RejectPermanent, Source: RejectSourceServiceUser, Reason: RejectCallingAENotRecognized}
		}
		a.org = org
	}
	return nil
}

// Abstract syntax families we serve.
const storagePrefix = "1.2.840.10008.5.1.4.1.1."

func isStorageClass(uid string) bool {
	return dicom.IsStorageSOPClass(uid) || (strings.HasPrefix(uid, storagePrefix) && dicom.ValidUID(uid))
}

// transferSyntaxesFor returns the transfer syntaxes we accept for an
// abstract syntax: storage keeps any syntax the codec can store as sent;
// identifiers need a syntax without encapsulated pixel data.
func transferSyntaxesFor(abstract string) func(string) (dicom.TransferSyntax, bool) {
	if isStorageClass(abstract) {
		return dicom.LookupTransferSyntax
	}
	return func(uid string) (dicom.TransferSyntax, bool) {
		ts, ok := dicom.LookupTransferSyntax(uid)
		return ts, ok && !ts.Encapsulated
	}
}

// serves reports whether the server offers abstract (for the requestor in
// the SCU role).
func (s *Server) serves(abstract string) bool {
	switch abstract {
	case dicom.VerificationSOPClass:
		return true
	case dicom.PatientRootQueryRetrieveFind, dicom.StudyRootQueryRetrieveFind:
		return s.cfg.Find != nil
	case dicom.PatientRootQueryRetrieveMove, dicom.StudyRootQueryRetrieveMove,
		dicom.PatientRootQueryRetrieveGet, dicom.StudyRootQueryRetrieveGet:
		return s.cfg.Retrieve != nil
	}
	return s.cfg.Store != nil && isStorageClass(abstract)
}

// accept negotiates the presentation contexts of rq into accepted and
// builds the A-ASSOCIATE-AC.
func (s *Server) accept(rq *AssociatePDU, accepted map[uint8]*acceptedContext) *AssociatePDU {
	roles := map[string]RoleSelection{}
	for _, r := range rq.UserInfo.Roles {
		roles[r.SOPClassUID] = r
	}
	ac := &AssociatePDU{
		Type:               PDUAssociateAC,
		CalledAE:           rq.CalledAE,
		CallingAE:          rq.CallingAE,
		ApplicationContext: dicom.ApplicationContextName,
		UserInfo: UserInfo{
			MaxLength:                 s.cfg.MaxPDULength,
			ImplementationClassUID:    dicom.ImplementationClassUID,
			ImplementationVersionName: dicom.ImplementationVersionName,
		},
	}
	if rq.UserInfo.HasAsync {
		// No asynchronous operations: one outstanding operation each way.
		ac.UserInfo.HasAsync, ac.UserInfo.AsyncInvoked, ac.UserInfo.AsyncPerformed = true, 1, 1
	}
	answeredRole := map[string]bool{}
	for _, pc := range rq.Contexts {
		res := PresentationContext{ID: pc.ID, Result: ResultAbstractSyntaxNotSupported}
		role, hasRole := roles[pc.AbstractSyntax]
		scu, scp := true, false
		if hasRole {
			scu, scp = role.SCU, role.SCP
		}
		// A requestor acting as storage SCP (C-GET) needs a retrieve
		// service on our side; as SCU it needs ours.
		offered := (scu && s.serves(pc.AbstractSyntax)) || (scp && s.cfg.Retrieve != nil && isStorageClass(pc.AbstractSyntax))
		_, dup := accepted[pc.ID]
		switch {
		case pc.ID%2 == 0 || dup:
			res.Result = ResultNoReason
		case offered:
			choose := chooseTransferSyntax
			if scp && !(scu && s.serves(pc.AbstractSyntax)) {
				// Only C-GET sub-operations go on it: the requestor stores
				// what we send, and native instances are transcoded to
				// any native syntax, so its order of preference is kept.
				choose = firstTransferSyntax
			}
			if ts, ok := choose(pc.AbstractSyntax, pc.TransferSyntaxes); ok {
				res.Result = ResultAcceptance
				res.TransferSyntaxes = []string{ts.UID}
				acScu := scu && s.serves(pc.AbstractSyntax)
				acScp := scp && s.cfg.Retrieve != nil
				accepted[pc.ID] = &acceptedContext{ID: pc.ID, AbstractSyntax: pc.AbstractSyntax, TransferSyntax: ts, SCURole: acScu, SCPRole: acScp}
				if hasRole && !answeredRole[pc.AbstractSyntax] {
					answeredRole[pc.AbstractSyntax] = true
					ac.UserInfo.Roles = append(ac.UserInfo.Roles, RoleSelection{SOPClassUID: pc.AbstractSyntax, SCU: acScu, SCP: acScp})
				}
			} else {
				res.Result = ResultTransferSyntaxesNotSupported
			}
		}
		if res.Result != ResultAcceptance {
			// The AC's transfer syntax sub-item is not significant for a
			// rejected context, but must be there (PS3.8 9.3.3.2).
			res.TransferSyntaxes = []string{dicom.ImplicitVRLittleEndian}
		}
		ac.Contexts = append(ac.Contexts, res)
	}
	return ac
}

// chooseTransferSyntax picks the transfer syntax of a context. When the
// requestor's first choice is a compressed (encapsulated or deflated)
// syntax the codec stores as sent, it is taken: the data arrives as the
// modality encoded it, with no decompression on its side. Otherwise
// Explicit VR LE is preferred, then Implicit VR LE, then the first
// proposed syntax we can store.
func chooseTransferSyntax(abstract string, proposed []string) (dicom.TransferSyntax, bool) {
	ok := transferSyntaxesFor(abstract)
	if len(proposed) > 0 {
		if ts, good := ok(proposed[0]); good && (ts.Encapsulated || ts.Deflated) {
			return ts, true
		}
	}
	for _, pref := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
		for _, p := range proposed {
			if p == pref {
				if ts, good := ok(p); good {
					return ts, true
				}
			}
		}
	}
	for _, p := range proposed {
		if ts, good := ok(p); good {
			return ts, true
		}
	}
	return dicom.TransferSyntax{}, false
}

// firstTransferSyntax picks the first proposed syntax we can handle.
func firstTransferSyntax(abstract string, proposed []string) (dicom.TransferSyntax, bool) {
	ok := transferSyntaxesFor(abstract)
	for _, p := range proposed {
		if ts, good := ok(p); good {
			return ts, true
		}
	}
	return dicom.TransferSyntax{}, false
}
