package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// subOps counts the C-STORE sub-operations of a C-MOVE or C-GET.
type subOps struct {
	remaining, completed, failed, warning uint16
	failedUIDs                            []string
}

func (s *subOps) record(uid string, st Status, err error) {
	s.remaining--
	switch {
	case err != nil || IsFailure(st.Code):
		s.failed++
		s.failedUIDs = append(s.failedUIDs, uid)
	case st.Code != StatusSuccess:
		s.warning++
	default:
		s.completed++
	}
}

// retrieveStore performs one sub-operation; it reports the sub-operation's
// status, and an error only when the association it runs on ended.
type retrieveStore func(ctx context.Context, inst Instance) (Status, error)

func (a *association) serveRetrieve(ctx context.Context, cmd *command, pc *acceptedContext) error {
	isMove := cmd.Field == cMoveRQ
	rspField := cGetRSP
	if isMove {
		rspField = cMoveRSP
	}
	ident, ok, err := a.identifier(ctx, cmd, pc, rspField)
	if !ok {
		return err
	}
	cfg := &a.srv.cfg
	var destAddr string
	if isMove {
		if destAddr, ok = cfg.MoveDestinations[cmd.MoveDestination]; !ok {
			return a.respond(pc.ID, rspField, cmd, Status{Code: StatusMoveDestinationUnknown, ErrorComment: "unknown move destination " + cmd.MoveDestination}, nil)
		}
	}
	req := RetrieveRequest{
		SOPClassUID:     pc.AbstractSyntax,
		Level:           ident.String(tag.QueryRetrieveLevel),
		Identifier:      ident,
		CallingAE:       a.callingAE,
		Organisation:    a.org,
		MoveDestination: cmd.MoveDestination,
	}
	insts, st := cfg.Retrieve.Retrieve(ctx, req)
	if IsFailure(st.Code) {
		return a.respond(pc.ID, rspField, cmd, st, nil)
	}
	if len(insts) > 0xFFFF {
		return a.respond(pc.ID, rspField, cmd, Status{Code: StatusOutOfResourcesSubOperations, ErrorComment: "too many instances for one retrieve"}, nil)
	}
	ops := &subOps{remaining: uint16(len(insts))}

	var store retrieveStore
	if isMove {
		if len(insts) > 0 {
			client, err := a.dialDestination(ctx, cmd.MoveDestination, destAddr, insts)
			if err != nil {
				a.log.Warn("dimse: C-MOVE destination unreachable", "destination", cmd.MoveDestination, "err", err)
				return a.respond(pc.ID, rspField, cmd, Status{Code: StatusOutOfResourcesSubOperations, ErrorComment: "cannot associate with the move destination"}, nil)
			}
			defer client.Release(context.WithoutCancel(ctx))
			store = func(ctx context.Context, inst Instance) (Status, error) {
				return moveSubOp(ctx, client, inst, a.callingAE, cmd.MessageID)
			}
		}
	} else {
		store = a.getSubOp
	}

	cancelled := false
	for _, inst := range insts {
		if c, err := a.pollCancel(cmd.MessageID); err != nil {
			return err
		} else if c {
			cancelled = true
			break
		}
		st, err := store(ctx, inst)
		if err != nil && !isMove && !errors.Is(err, ErrCancelled) {
			return err // our own association ended
		}
		if errors.Is(err, ErrCancelled) {
			cancelled = true
			// The store completed before the cancel was seen.
		}
		ops.record(inst.SOPInstanceUID, st, ignoreCancel(err))
		if ops.remaining > 0 && !cancelled {
			if err := a.sendRetrieveResponse(pc, rspField, cmd, Status{Code: StatusPending}, ops, true, nil); err != nil {
				return err
			}
		}
		if cancelled {
			break
		}
	}
	final := Status{Code: StatusSuccess}
	switch {
	case cancelled:
		final.Code = StatusCancel
	case ops.failed > 0 && ops.completed == 0 && ops.warning == 0:
		// Every sub-operation failed: a failure, not a warning (PS3.4
		// C.4.2.3.1, C.4.3.3.1); dcmtk's SCPs answer the same.
		final.Code = StatusOutOfResourcesSubOperations
	case ops.failed > 0 || ops.warning > 0:
		final.Code = StatusSubOperationsWarning
	}
	var data *dicom.Dataset
	if ops.failed > 0 {
		data = &dicom.Dataset{}
		data.Set(dicom.NewStrings(tag.FailedSOPInstanceUIDList, dicom.UI, ops.failedUIDs...))
	}
	return a.sendRetrieveResponse(pc, rspField, cmd, final, ops, cancelled, data)
}

func ignoreCancel(err error) error {
	if errors.Is(err, ErrCancelled) {
		return nil
	}
	return err
}

func (a *association) sendRetrieveResponse(pc *acceptedContext, field uint16, req *command, st Status, ops *subOps, withRemaining bool, data *dicom.Dataset) error {
	rsp := &command{
		Field:            field,
		RespondedTo:      req.MessageID,
		AffectedSOPClass: req.AffectedSOPClass,
		Status:           st.Code,
		HasStatus:        true,
		ErrorComment:     st.ErrorComment,
		HasCounters:      true,
		HasRemaining:     withRemaining,
		Remaining:        ops.remaining,
		Completed:        ops.completed,
		Failed:           ops.failed,
		Warning:          ops.warning,
	}
	var b []byte
	if data != nil {
		var err error
		if b, err = encodeDataset(data, pc.TransferSyntax); err != nil {
			return a.abort(err)
		}
	}
	return a.sendResponse(pc.ID, rsp, b)
}

// dialDestination opens the sub-operation association to a C-MOVE
// destination, proposing each (SOP class, transfer syntax) of insts.
func (a *association) dialDestination(ctx context.Context, ae, addr string, insts []Instance) (*Client, error) {
	type key struct{ class, ts string }
	seen := map[key]bool{}
	var keys []key
	for _, in := range insts {
		k := key{in.SOPClassUID, in.TransferSyntax.UID}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].class != keys[j].class {
			return keys[i].class < keys[j].class
		}
		return keys[i].ts < keys[j].ts
	})
	if len(keys) > 128 {
		keys = keys[:128] // the rest fail unless transcoded: a presentation context ID is one odd byte
	}
	// One context per (class, stored syntax), so that an instance goes as
	// stored whenever the destination takes its syntax; and one per class
	// of native instances offering the native syntaxes, so that it can
	// still go, transcoded, when the destination takes only another one.
	// Encapsulated instances are never decoded: no fallback for them.
	var pcs []ProposedContext
	fallback := map[string]bool{}
	for _, k := range keys {
		pcs = append(pcs, ProposedContext{AbstractSyntax: k.class, TransferSyntaxes: []string{k.ts}})
		if ts, ok := dicom.LookupTransferSyntax(k.ts); ok && !ts.Encapsulated {
			fallback[k.class] = true
		}
	}
	for _, k := range keys {
		if fallback[k.class] && len(pcs) < 128 {
			fallback[k.class] = false
			pcs = append(pcs, ProposedContext{AbstractSyntax: k.class, TransferSyntaxes: nativeSyntaxes})
		}
	}
	calling := a.srv.cfg.AETitle
	if calling == "" {
		calling = a.calledAE
	}
	return Associate(ctx, addr, ClientConfig{
		CallingAE:    calling,
		CalledAE:     ae,
		MaxPDULength: a.srv.cfg.MaxPDULength,
		Contexts:     pcs,
		TLS:          nil,
		ARTIMTimeout: a.srv.cfg.ARTIMTimeout,
		Logger:       a.log,
	})
}

func moveSubOp(ctx context.Context, c *Client, inst Instance, origAE string, origID uint16) (Status, error) {
	pc := subOpContext(c.u.contexts, inst, false)
	if pc == nil {
		return Status{}, fmt.Errorf("%w for %s in %s at the move destination", ErrNoContext, inst.SOPClassUID, inst.TransferSyntax.UID)
	}
	rc, err := openAs(ctx, inst, pc.TransferSyntax)
	if err != nil {
		return Status{}, fmt.Errorf("dimse: open %s: %w", inst.SOPInstanceUID, err)
	}
	defer rc.Close()
	return c.storeOn(ctx, pc.ID, inst.SOPClassUID, inst.SOPInstanceUID, rc, StoreOptions{MoveOriginatorAE: origAE, MoveOriginatorMessageID: origID})
}

// nativeSyntaxes are the uncompressed transfer syntaxes a stored native
// instance can be sent in (transcoded by the dicom codec), in our order
// of preference.
var nativeSyntaxes = []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.ExplicitVRBigEndian}

// subOpContext picks the accepted context to send inst on (scp: one where
// the requestor took the SCP role, for C-GET): one in the stored transfer
// syntax if there is one, so the instance goes as stored; otherwise, for
// a native instance, one in another native syntax (preferred as
// nativeSyntaxes lists them, then deflated) to transcode into. An
// encapsulated instance is never decoded: nil if its syntax was not
// accepted. The lowest context ID wins a tie.
func subOpContext(contexts map[uint8]*acceptedContext, inst Instance, scp bool) *acceptedContext {
	rank := func(ts dicom.TransferSyntax) int {
		if ts.UID == inst.TransferSyntax.UID {
			return 0
		}
		if inst.TransferSyntax.Encapsulated || !dicom.CanTranscode(inst.TransferSyntax, ts) {
			return -1
		}
		for i, uid := range nativeSyntaxes {
			if ts.UID == uid {
				return 1 + i
			}
		}
		return 1 + len(nativeSyntaxes)
	}
	var best *acceptedContext
	bestRank := -1
	for _, c := range contexts {
		if c.AbstractSyntax != inst.SOPClassUID || (scp && !c.SCPRole) {
			continue
		}
		r := rank(c.TransferSyntax)
		if r < 0 {
			continue
		}
		if best == nil || r < bestRank || (r == bestRank && c.ID < best.ID) {
			best, bestRank = c, r
		}
	}
	return best
}

// openAs opens inst's data set in transfer syntax ts, transcoding it as
// it is read when ts is not the stored syntax (subOpContext only picks
// syntaxes dicom.Transcode converts between).
func openAs(ctx context.Context, inst Instance, ts dicom.TransferSyntax) (io.ReadCloser, error) {
	rc, err := inst.Open(ctx)
	if err != nil || ts.UID == inst.TransferSyntax.UID {
		return rc, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer rc.Close()
		err := dicom.Transcode(pw, rc, inst.TransferSyntax, ts)
		if err != nil {
			err = fmt.Errorf("transcode %s from %s to %s: %w", inst.SOPInstanceUID, inst.TransferSyntax.UID, ts.UID, err)
		}
		pw.CloseWithError(err)
	}()
	return &transcoded{PipeReader: pr, done: done}, nil
}

// transcoded is the reading end of a transcode; Close stops the
// transcoding goroutine and waits for it.
type transcoded struct {
	*io.PipeReader
	done chan struct{}
}

func (t *transcoded) Close() error {
	t.PipeReader.Close()
	<-t.done
	return nil
}

// getSubOp sends one instance back over the C-GET association, on a
// context where the requestor accepted the SCP role.
func (a *association) getSubOp(ctx context.Context, inst Instance) (Status, error) {
	pc := subOpContext(a.contexts, inst, true)
	if pc == nil {
		a.log.Info("dimse: C-GET sub-operation without a fitting context", "sop_class", inst.SOPClassUID, "transfer_syntax", inst.TransferSyntax.UID)
		return Status{Code: StatusOutOfResourcesSubOperations}, nil
	}
	rc, err := openAs(ctx, inst, pc.TransferSyntax)
	if err != nil {
		a.log.Warn("dimse: C-GET open instance", "sop_instance", inst.SOPInstanceUID, "err", err)
		return Status{Code: StatusOutOfResources}, nil
	}
	defer rc.Close()
	a.nextMsgID++
	id := a.nextMsgID
	if err := a.sendMessage(pc.ID, &command{Field: cStoreRQ, MessageID: id, AffectedSOPClass: inst.SOPClassUID, AffectedSOPInstance: inst.SOPInstanceUID}, rc); err != nil {
		return Status{}, err
	}
	var cancelErr error
	for {
		cmd, rpc, err := a.readCommand(ctx, waitMessage)
		if err != nil {
			return Status{}, err
		}
		if cmd.DataSet {
			if _, err := a.readData(ctx, rpc.ID, maxIdentifierLength); err != nil {
				return Status{}, err
			}
		}
		switch {
		case cmd.Field == cCancelRQ:
			cancelErr = ErrCancelled
		case cmd.Field == cStoreRSP && cmd.RespondedTo == id:
			return statusOf(cmd), cancelErr
		default:
			return Status{}, a.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("%s while awaiting the C-STORE-RSP of a C-GET sub-operation", commandName(cmd.Field)))
		}
	}
}
