package dimse

import (
	"context"
	"errors"
	"fmt"
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
		keys = keys[:128] // the rest fail: a presentation context ID is one odd byte
	}
	var pcs []ProposedContext
	for _, k := range keys {
		pcs = append(pcs, ProposedContext{AbstractSyntax: k.class, TransferSyntaxes: []string{k.ts}})
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
	pc := c.context(inst.SOPClassUID, inst.TransferSyntax.UID)
	if pc == nil {
		return Status{}, fmt.Errorf("%w for %s in %s at the move destination", ErrNoContext, inst.SOPClassUID, inst.TransferSyntax.UID)
	}
	rc, err := inst.Open(ctx)
	if err != nil {
		return Status{}, fmt.Errorf("dimse: open %s: %w", inst.SOPInstanceUID, err)
	}
	defer rc.Close()
	return c.storeOn(ctx, pc.ID, inst.SOPClassUID, inst.SOPInstanceUID, rc, StoreOptions{MoveOriginatorAE: origAE, MoveOriginatorMessageID: origID})
}

// getSubOp sends one instance back over the C-GET association, on a
// context where the requestor accepted the SCP role.
func (a *association) getSubOp(ctx context.Context, inst Instance) (Status, error) {
	var pc *acceptedContext
	for _, c := range a.contexts {
		if c.AbstractSyntax == inst.SOPClassUID && c.SCPRole && c.TransferSyntax.UID == inst.TransferSyntax.UID && (pc == nil || c.ID < pc.ID) {
			pc = c
		}
	}
	if pc == nil {
		a.log.Info("dimse: C-GET sub-operation without a fitting context", "sop_class", inst.SOPClassUID, "transfer_syntax", inst.TransferSyntax.UID)
		return Status{Code: StatusOutOfResourcesSubOperations}, nil
	}
	rc, err := inst.Open(ctx)
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
