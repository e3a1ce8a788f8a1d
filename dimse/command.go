package dimse

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/medimint/medimint/dicom"
	"github.com/medimint/medimint/dicom/tag"
)

// Command Field values (PS3.7 E.1).
const (
	cStoreRQ  uint16 = 0x0001
	cStoreRSP uint16 = 0x8001
	cGetRQ    uint16 = 0x0010
	cGetRSP   uint16 = 0x8010
	cFindRQ   uint16 = 0x0020
	cFindRSP  uint16 = 0x8020
	cMoveRQ   uint16 = 0x0021
	cMoveRSP  uint16 = 0x8021
	cEchoRQ   uint16 = 0x0030
	cEchoRSP  uint16 = 0x8030
	cCancelRQ uint16 = 0x0FFF
)

// noDataSet is the Command Data Set Type (0000,0800) value saying no data
// set follows; any other value says one does.
const (
	noDataSet  uint16 = 0x0101
	hasDataSet uint16 = 0x0000
)

// maxCommandLength bounds a reassembled command set: commands are a few
// hundred bytes, so anything larger is an attack or a bug.
const maxCommandLength = 64 << 10

func commandName(f uint16) string {
	switch f {
	case cStoreRQ:
		return "C-STORE-RQ"
	case cStoreRSP:
		return "C-STORE-RSP"
	case cGetRQ:
		return "C-GET-RQ"
	case cGetRSP:
		return "C-GET-RSP"
	case cFindRQ:
		return "C-FIND-RQ"
	case cFindRSP:
		return "C-FIND-RSP"
	case cMoveRQ:
		return "C-MOVE-RQ"
	case cMoveRSP:
		return "C-MOVE-RSP"
	case cEchoRQ:
		return "C-ECHO-RQ"
	case cEchoRSP:
		return "C-ECHO-RSP"
	case cCancelRQ:
		return "C-CANCEL-RQ"
	}
	return fmt.Sprintf("command 0x%04X", f)
}

// command is a decoded DIMSE command set. Optional numeric fields carry a
// presence flag because zero is a meaningful value.
type command struct {
	Field                uint16
	MessageID            uint16
	RespondedTo          uint16
	AffectedSOPClass     string
	AffectedSOPInstance  string
	RequestedSOPClass    string
	RequestedSOPInstance string
	Priority             uint16
	DataSet              bool
	Status               uint16
	HasStatus            bool
	ErrorComment         string
	OffendingElements    []dicom.Tag
	MoveDestination      string
	MoveOriginatorAE     string
	MoveOriginatorID     uint16
	HasMoveOriginator    bool
	HasCounters          bool
	HasRemaining         bool
	Remaining            uint16
	Completed            uint16
	Failed               uint16
	Warning              uint16
}

// dataset returns the command as a group 0000 data set.
func (c *command) dataset() *dicom.Dataset {
	ds := &dicom.Dataset{}
	uid := func(t dicom.Tag, v string) {
		if v != "" {
			ds.Set(dicom.NewStrings(t, dicom.UI, v))
		}
	}
	uid(tag.AffectedSOPClassUID, c.AffectedSOPClass)
	uid(tag.RequestedSOPClassUID, c.RequestedSOPClass)
	ds.Set(dicom.NewUint16s(tag.CommandField, c.Field))
	if c.Field&0x8000 == 0 && c.Field != cCancelRQ {
		ds.Set(dicom.NewUint16s(tag.MessageID, c.MessageID))
	} else {
		ds.Set(dicom.NewUint16s(tag.MessageIDBeingRespondedTo, c.RespondedTo))
	}
	if c.MoveDestination != "" {
		ds.Set(dicom.NewStrings(tag.MoveDestination, dicom.AE, c.MoveDestination))
	}
	switch c.Field {
	case cStoreRQ, cFindRQ, cMoveRQ, cGetRQ:
		ds.Set(dicom.NewUint16s(tag.Priority, c.Priority))
	}
	dst := noDataSet
	if c.DataSet {
		dst = hasDataSet
	}
	ds.Set(dicom.NewUint16s(tag.CommandDataSetType, dst))
	if c.HasStatus {
		ds.Set(dicom.NewUint16s(tag.Status, c.Status))
	}
	if len(c.OffendingElements) > 0 {
		b := make([]byte, 0, 4*len(c.OffendingElements))
		for _, t := range c.OffendingElements {
			b = binary.LittleEndian.AppendUint16(b, t.Group())
			b = binary.LittleEndian.AppendUint16(b, t.Element())
		}
		ds.Set(dicom.Element{Tag: tag.OffendingElement, VR: dicom.AT, Value: b})
	}
	if c.ErrorComment != "" {
		ec := c.ErrorComment
		if len(ec) > 64 {
			ec = ec[:64]
		}
		ds.Set(dicom.NewStrings(tag.ErrorComment, dicom.LO, ec))
	}
	uid(tag.AffectedSOPInstanceUID, c.AffectedSOPInstance)
	uid(tag.RequestedSOPInstanceUID, c.RequestedSOPInstance)
	if c.HasCounters {
		if c.HasRemaining {
			ds.Set(dicom.NewUint16s(tag.NumberOfRemainingSuboperations, c.Remaining))
		}
		ds.Set(dicom.NewUint16s(tag.NumberOfCompletedSuboperations, c.Completed))
		ds.Set(dicom.NewUint16s(tag.NumberOfFailedSuboperations, c.Failed))
		ds.Set(dicom.NewUint16s(tag.NumberOfWarningSuboperations, c.Warning))
	}
	if c.HasMoveOriginator {
		ds.Set(dicom.NewStrings(tag.MoveOriginatorApplicationEntityTitle, dicom.AE, c.MoveOriginatorAE))
		ds.Set(dicom.NewUint16s(tag.MoveOriginatorMessageID, c.MoveOriginatorID))
	}
	return ds
}

var implicitLE, _ = dicom.LookupTransferSyntax(dicom.ImplicitVRLittleEndian)

// encode returns the command set in Implicit VR Little Endian with its
// Command Group Length.
func (c *command) encode() []byte {
	ds := c.dataset()
	ds.Set(dicom.NewUint32s(tag.CommandGroupLength, 0)) // computed by the writer
	var buf bytes.Buffer
	if err := dicom.WriteDataset(&buf, ds, implicitLE, dicom.WriteOptions{}); err != nil {
		// Only a failing writer or a Bulk callback can fail, and neither
		// applies to a bytes.Buffer and a command.
		panic(fmt.Sprintf("dimse: encoding a command set: %v", err))
	}
	return buf.Bytes()
}

// decodeCommand parses an Implicit VR Little Endian command set: flat, only
// group 0000 elements.
func decodeCommand(b []byte) (*command, error) {
	ds, err := dicom.ReadDataset(bytes.NewReader(b), implicitLE, dicom.ReadOptions{MaxDepth: 1})
	if err != nil {
		return nil, fmt.Errorf("dimse: command set: %w", err)
	}
	c := &command{}
	seen := map[dicom.Tag]bool{}
	for i := range ds.Elements {
		e := &ds.Elements[i]
		t, v := e.Tag, e.Value
		if t.Group() != 0 {
			return nil, fmt.Errorf("dimse: command set: element %s outside group 0000", t)
		}
		if e.Items != nil || e.Fragments != nil {
			return nil, fmt.Errorf("dimse: command set: %s is not a flat value", t)
		}
		seen[t] = true
		u16 := func() (uint16, error) {
			if len(v) != 2 {
				return 0, fmt.Errorf("dimse: command set: %s has length %d, want 2", t, len(v))
			}
			return binary.LittleEndian.Uint16(v), nil
		}
		var err error
		switch t {
		case tag.CommandField:
			c.Field, err = u16()
		case tag.MessageID:
			c.MessageID, err = u16()
		case tag.MessageIDBeingRespondedTo:
			c.RespondedTo, err = u16()
		case tag.AffectedSOPClassUID:
			c.AffectedSOPClass = trimUID(v)
		case tag.AffectedSOPInstanceUID:
			c.AffectedSOPInstance = trimUID(v)
		case tag.RequestedSOPClassUID:
			c.RequestedSOPClass = trimUID(v)
		case tag.RequestedSOPInstanceUID:
			c.RequestedSOPInstance = trimUID(v)
		case tag.Priority:
			c.Priority, err = u16()
		case tag.CommandDataSetType:
			var d uint16
			d, err = u16()
			c.DataSet = d != noDataSet
		case tag.Status:
			c.Status, err = u16()
			c.HasStatus = true
		case tag.ErrorComment:
			c.ErrorComment = strings.TrimRight(string(v), " \x00")
		case tag.OffendingElement:
			for i := 0; i+4 <= len(v); i += 4 {
				c.OffendingElements = append(c.OffendingElements, dicom.NewTag(binary.LittleEndian.Uint16(v[i:]), binary.LittleEndian.Uint16(v[i+2:])))
			}
		case tag.MoveDestination:
			c.MoveDestination = strings.Trim(string(v), " \x00")
		case tag.MoveOriginatorApplicationEntityTitle:
			c.MoveOriginatorAE = strings.Trim(string(v), " \x00")
			c.HasMoveOriginator = true
		case tag.MoveOriginatorMessageID:
			c.MoveOriginatorID, err = u16()
		case tag.NumberOfRemainingSuboperations:
			c.Remaining, err = u16()
			c.HasCounters, c.HasRemaining = true, true
		case tag.NumberOfCompletedSuboperations:
			c.Completed, err = u16()
			c.HasCounters = true
		case tag.NumberOfFailedSuboperations:
			c.Failed, err = u16()
			c.HasCounters = true
		case tag.NumberOfWarningSuboperations:
			c.Warning, err = u16()
			c.HasCounters = true
		}
		if err != nil {
			return nil, err
		}
	}
	if !seen[tag.CommandField] {
		return nil, fmt.Errorf("dimse: command set without Command Field")
	}
	if !seen[tag.CommandDataSetType] {
		return nil, fmt.Errorf("dimse: %s without Command Data Set Type", commandName(c.Field))
	}
	if c.Field&0x8000 == 0 && c.Field != cCancelRQ && !seen[tag.MessageID] {
		return nil, fmt.Errorf("dimse: %s without Message ID", commandName(c.Field))
	}
	return c, nil
}
