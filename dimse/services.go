package dimse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// StoreRequest describes a C-STORE for a StoreHandler.
type StoreRequest struct {
	SOPClassUID    string
	SOPInstanceUID string
	// TransferSyntax is the one negotiated for the presentation context:
	// the data set's encoding.
	TransferSyntax dicom.TransferSyntax
	CallingAE      string
	CalledAE       string
	Organisation   string // from Config.AllowedCallers
	RemoteAddr     net.Addr
	MessageID      uint16
	Priority       uint16
	// MoveOriginatorAE and MoveOriginatorMessageID are set when the store
	// is a sub-operation of someone's C-MOVE.
	MoveOriginatorAE        string
	MoveOriginatorMessageID uint16
}

// StoreHandler stores one instance. data yields the data set bytes (no
// File Meta) as they arrive; Store must read it to io.EOF and return only
// once the instance is durable. A read error means the association ended:
// the instance must then be discarded.
type StoreHandler interface {
	Store(ctx context.Context, req StoreRequest, data io.Reader) Status
}

// FindRequest describes a C-FIND for a FindHandler.
type FindRequest struct {
	SOPClassUID  string // the information model (Patient or Study Root FIND)
	Level        string // Query/Retrieve Level (0008,0052)
	Identifier   *dicom.Dataset
	CallingAE    string
	Organisation string
	Priority     uint16
}

// FindHandler answers C-FIND. emit sends one pending response; it returns
// an error (ErrCancelled, or the association ended) when the handler must
// stop.
type FindHandler interface {
	Find(ctx context.Context, req FindRequest, emit func(*dicom.Dataset) error) Status
}

// RetrieveRequest describes a C-MOVE or C-GET for a RetrieveHandler.
type RetrieveRequest struct {
	SOPClassUID     string // the information model (Patient or Study Root MOVE/GET)
	Level           string
	Identifier      *dicom.Dataset
	CallingAE       string
	Organisation    string
	MoveDestination string // C-MOVE only
}

// Instance is one instance to send in a C-MOVE or C-GET sub-operation.
type Instance struct {
	SOPClassUID    string
	SOPInstanceUID string
	TransferSyntax dicom.TransferSyntax
	// Open returns the data set bytes (no File Meta) in TransferSyntax.
	Open func(ctx context.Context) (io.ReadCloser, error)
}

// RetrieveHandler resolves a C-MOVE or C-GET identifier to the instances
// to send. Listing them up front gives the sub-operation count and the
// presentation contexts to propose before the first C-STORE.
type RetrieveHandler interface {
	Retrieve(ctx context.Context, req RetrieveRequest) ([]Instance, Status)
}

// ErrCancelled is returned by a FindHandler's emit after a C-CANCEL.
var ErrCancelled = errors.New("dimse: operation cancelled by the peer")

// maxIdentifierLength bounds C-FIND/MOVE/GET identifiers held in memory.
const maxIdentifierLength = 1 << 20

// serve runs the data transfer phase (Sta6) until the association ends.
func (a *association) serve() error {
	for {
		cmd, pc, err := a.readCommand(context.Background(), waitIdle)
		if err != nil {
			return err
		}
		if err := a.dispatch(cmd, pc); err != nil {
			return err
		}
		select {
		case <-a.drain:
			return a.abort(fmt.Errorf("%w: server shutting down", errLocalAbort))
		default:
		}
	}
}

func (a *association) dispatch(cmd *command, pc *acceptedContext) error {
	ctx := a.peerCtx
	if !pc.SCURole && cmd.Field != cCancelRQ {
		// The requestor may only send requests on contexts where it is SCU.
		return a.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("%s on context %d where the requestor is not SCU", commandName(cmd.Field), pc.ID))
	}
	switch cmd.Field {
	case cEchoRQ:
		if cmd.DataSet {
			if _, err := a.readData(ctx, pc.ID, maxIdentifierLength); err != nil {
				return err
			}
		}
		return a.respond(pc.ID, cEchoRSP, cmd, Success, nil)
	case cStoreRQ:
		return a.serveStore(ctx, cmd, pc)
	case cFindRQ:
		return a.serveFind(ctx, cmd, pc)
	case cMoveRQ, cGetRQ:
		return a.serveRetrieve(ctx, cmd, pc)
	case cCancelRQ:
		return nil // nothing outstanding to cancel
	default:
		if cmd.DataSet {
			if _, err := a.readData(ctx, pc.ID, maxIdentifierLength); err != nil {
				return err
			}
		}
		if cmd.Field&0x8000 != 0 {
			return a.protocolError(AbortReasonUnexpectedParameter, fmt.Errorf("unexpected %s", commandName(cmd.Field)))
		}
		return a.respond(pc.ID, cmd.Field|0x8000, cmd, Status{Code: StatusUnrecognizedOperation}, nil)
	}
}

// respond sends a response to req with status st and an optional data set.
func (a *association) respond(pcid uint8, field uint16, req *command, st Status, data []byte) error {
	rsp := &command{
		Field:               field,
		RespondedTo:         req.MessageID,
		AffectedSOPClass:    req.AffectedSOPClass,
		AffectedSOPInstance: req.AffectedSOPInstance,
		Status:              st.Code,
		HasStatus:           true,
		ErrorComment:        st.ErrorComment,
		OffendingElements:   st.OffendingElements,
	}
	return a.sendResponse(pcid, rsp, data)
}

func (a *association) sendResponse(pcid uint8, rsp *command, data []byte) error {
	var r io.Reader
	if data != nil {
		r = byteReader(data)
	}
	return a.sendMessage(pcid, rsp, r)
}

func (a *association) serveStore(ctx context.Context, cmd *command, pc *acceptedContext) error {
	if !cmd.DataSet {
		return a.respond(pc.ID, cStoreRSP, cmd, Status{Code: StatusCannotUnderstand, ErrorComment: "C-STORE-RQ without data set"}, nil)
	}
	d := &dataReader{u: a.ulConn, ctx: ctx, pcid: pc.ID}
	var st Status
	switch {
	case cmd.AffectedSOPClass != pc.AbstractSyntax:
		st = Status{Code: StatusDataSetDoesNotMatchSOPClass, ErrorComment: "SOP class differs from the presentation context's"}
	case !dicom.ValidUID(cmd.AffectedSOPInstance):
		st = Status{Code: StatusCannotUnderstand, ErrorComment: "invalid Affected SOP Instance UID"}
	default:
		req := StoreRequest{
			SOPClassUID:             cmd.AffectedSOPClass,
			SOPInstanceUID:          cmd.AffectedSOPInstance,
			TransferSyntax:          pc.TransferSyntax,
			CallingAE:               a.callingAE,
			CalledAE:                a.calledAE,
			Organisation:            a.org,
			RemoteAddr:              a.remote,
			MessageID:               cmd.MessageID,
			Priority:                cmd.Priority,
			MoveOriginatorAE:        cmd.MoveOriginatorAE,
			MoveOriginatorMessageID: cmd.MoveOriginatorID,
		}
		st = a.srv.cfg.Store.Store(ctx, req, d)
	}
	left, err := d.finish()
	if err != nil {
		if !errors.Is(err, errAssociationEnded) {
			err = a.abort(err)
		}
		return err
	}
	if left > 0 && st.Code == StatusSuccess && d.n > left {
		// A handler that reports success without reading everything has
		// not stored the instance.
		a.log.Error("dimse: store handler returned success without reading the whole data set", "sop_instance", cmd.AffectedSOPInstance, "unread", left)
		st = Status{Code: StatusProcessingFailure, ErrorComment: "data set not consumed"}
	}
	return a.respond(pc.ID, cStoreRSP, cmd, st, nil)
}

// pollCancel reports whether a C-CANCEL-RQ for msgID has arrived, without
// waiting. Long operations call it between responses.
func (a *association) pollCancel(msgID uint16) (bool, error) {
	if err := a.poll(); err != nil {
		return false, err
	}
	return a.cancelPending(msgID), nil
}

// identifier reads a C-FIND/MOVE/GET identifier.
func (a *association) identifier(ctx context.Context, cmd *command, pc *acceptedContext, rspField uint16) (*dicom.Dataset, bool, error) {
	if !cmd.DataSet {
		return nil, false, a.respond(pc.ID, rspField, cmd, Status{Code: StatusCannotUnderstand, ErrorComment: "request without identifier"}, nil)
	}
	b, err := a.readData(ctx, pc.ID, maxIdentifierLength)
	if err != nil {
		return nil, false, err
	}
	ds, err := decodeDataset(b, pc.TransferSyntax)
	if err != nil {
		return nil, false, a.respond(pc.ID, rspField, cmd, Status{Code: StatusCannotUnderstand, ErrorComment: "identifier cannot be parsed"}, nil)
	}
	if cmd.AffectedSOPClass != pc.AbstractSyntax {
		return nil, false, a.respond(pc.ID, rspField, cmd, Status{Code: StatusSOPClassNotSupported}, nil)
	}
	return ds, true, nil
}

func (a *association) serveFind(ctx context.Context, cmd *command, pc *acceptedContext) error {
	ident, ok, err := a.identifier(ctx, cmd, pc, cFindRSP)
	if !ok {
		return err
	}
	opCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	req := FindRequest{
		SOPClassUID:  pc.AbstractSyntax,
		Level:        ident.String(tag.QueryRetrieveLevel),
		Identifier:   ident,
		CallingAE:    a.callingAE,
		Organisation: a.org,
		Priority:     cmd.Priority,
	}
	var sendErr, encErr error
	cancelled := false
	emit := func(ds *dicom.Dataset) error {
		if sendErr != nil {
			return sendErr
		}
		if !cancelled {
			cancelled, sendErr = a.pollCancel(cmd.MessageID)
		}
		if sendErr == nil && cancelled {
			cancel()
			return ErrCancelled
		}
		if sendErr == nil {
			b, err := encodeDataset(ds, pc.TransferSyntax)
			if err != nil {
				// The handler built a data set we cannot encode: stop
				// with a failure rather than send a wrong response.
				encErr = err
				cancel()
				return err
			}
			sendErr = a.respond(pc.ID, cFindRSP, cmd, Status{Code: StatusPending}, b)
		}
		if sendErr != nil {
			cancel()
		}
		return sendErr
	}
	st := a.srv.cfg.Find.Find(opCtx, req, emit)
	if sendErr != nil {
		return sendErr
	}
	if !cancelled {
		if cancelled, sendErr = a.pollCancel(cmd.MessageID); sendErr != nil {
			return sendErr
		}
	}
	switch {
	case cancelled:
		st = Status{Code: StatusCancel}
	case encErr != nil:
		a.log.Error("dimse: C-FIND response cannot be encoded", "err", encErr)
		st = Status{Code: StatusUnableToProcess, ErrorComment: "response cannot be encoded"}
	}
	return a.respond(pc.ID, cFindRSP, cmd, st, nil)
}
