package dimse

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/medimint/medimint/dicom"
)

func sampleRQ() *AssociatePDU {
	return &AssociatePDU{
		Type:               PDUAssociateRQ,
		ProtocolVersion:    1,
		CalledAE:           "MEDIMINT",
		CallingAE:          "MODALITY",
		ApplicationContext: dicom.ApplicationContextName,
		Contexts: []PresentationContext{
			{ID: 1, AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
			{ID: 3, AbstractSyntax: "1.2.840.10008.5.1.4.1.1.2", TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian, dicom.JPEGLosslessSV1}},
		},
		UserInfo: UserInfo{
			MaxLength:                 16384,
			ImplementationClassUID:    "1.2.3.4",
			ImplementationVersionName: "TEST_1",
			HasAsync:                  true, AsyncInvoked: 4, AsyncPerformed: 2,
			Roles:        []RoleSelection{{SOPClassUID: "1.2.840.10008.5.1.4.1.1.2", SCU: false, SCP: true}},
			UserIdentity: &UserIdentity{Type: 2, PositiveResponseRequested: true, Primary: []byte("alice"), Secondary: []byte("secret")},
		},
	}
}

func TestAssociateRoundTrip(t *testing.T) {
	for _, a := range []*AssociatePDU{sampleRQ(), {
		Type: PDUAssociateAC, ProtocolVersion: 1, CalledAE: "MEDIMINT", CallingAE: "MODALITY",
		ApplicationContext: dicom.ApplicationContextName,
		Contexts: []PresentationContext{
			{ID: 1, Result: ResultAcceptance, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
			{ID: 3, Result: ResultAbstractSyntaxNotSupported, TransferSyntaxes: []string{dicom.ImplicitVRLittleEndian}},
		},
		UserInfo: UserInfo{MaxLength: 0, ImplementationClassUID: "1.2.3", UserIdentityResponse: []byte("ok")},
	}} {
		b := a.Encode(nil)
		typ, body, err := ReadPDU(bytes.NewReader(b), nil, 0)
		if err != nil || typ != a.Type {
			t.Fatalf("ReadPDU: %s, %v", typ, err)
		}
		got, err := DecodeAssociate(typ, body)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, a) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, a)
		}
	}
}

func TestShortPDUs(t *testing.T) {
	rj := &RejectPDU{Result: 1, Source: 1, Reason: 7}
	typ, body, err := ReadPDU(bytes.NewReader(rj.Encode()), nil, 0)
	if err != nil || typ != PDUAssociateRJ {
		t.Fatal(typ, err)
	}
	if got, err := DecodeReject(body); err != nil || *got != *rj {
		t.Errorf("reject: %+v %v", got, err)
	}
	ab := &AbortPDU{Source: 2, Reason: 6}
	typ, body, _ = ReadPDU(bytes.NewReader(ab.Encode()), nil, 0)
	if got, err := DecodeAbort(body); typ != PDUAbort || err != nil || *got != *ab {
		t.Errorf("abort: %+v %v", got, err)
	}
	if _, err := DecodeAbort([]byte{0, 0, 2}); !errors.Is(err, errInvalidPDU) {
		t.Errorf("3-byte abort: %v", err)
	}
}

// TestDecodeAssociateErrors feeds malformed variable fields.
func TestDecodeAssociateErrors(t *testing.T) {
	good := sampleRQ().Encode(nil)[pduHeaderLen:]
	fixed := good[:68]
	item := func(typ byte, v []byte) []byte { return appendItem(nil, typ, v) }
	appCtx := item(itemApplicationContext, []byte(dicom.ApplicationContextName))
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name string
		body []byte
	}{
		{"empty", nil},
		{"fixed fields only, no application context", fixed},
		{"item length past the end", cat(fixed, []byte{itemApplicationContext, 0, 0xFF, 0xFF, '1'})},
		{"truncated item header", cat(fixed, appCtx, []byte{0x20, 0})},
		{"two application contexts", cat(fixed, appCtx, appCtx)},
		{"unknown item", cat(fixed, appCtx, item(0x33, []byte{1}))},
		{"context without transfer syntax", cat(fixed, appCtx, item(itemPresentationContext, cat([]byte{1, 0, 0, 0}, item(itemAbstractSyntax, []byte("1.2")))))},
		{"context too short", cat(fixed, appCtx, item(itemPresentationContext, []byte{1, 0}))},
		{"AC context item in RQ", cat(fixed, appCtx, item(itemPresentationContextA, cat([]byte{1, 0, 0, 0}, item(itemTransferSyntax, []byte("1.2")))))},
		{"max length of 3 bytes", cat(fixed, appCtx, item(itemUserInformation, item(itemMaxLength, []byte{0, 1, 0})))},
		{"role selection UID overrun", cat(fixed, appCtx, item(itemUserInformation, item(itemRoleSelection, []byte{0, 9, '1', 1, 1})))},
		{"user identity overrun", cat(fixed, appCtx, item(itemUserInformation, item(itemUserIdentityRQ, []byte{1, 0, 0, 9, 'a'})))},
		{"two user information items", cat(fixed, appCtx, item(itemUserInformation, nil), item(itemUserInformation, nil))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := DecodeAssociate(PDUAssociateRQ, c.body); !errors.Is(err, errInvalidPDU) {
				t.Errorf("got %v, want errInvalidPDU", err)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReadPDULimits(t *testing.T) {
	hdr := func(t PDUType, n uint32) []byte {
		return binary.BigEndian.AppendUint32([]byte{byte(t), 0}, n)
	}
	cases := []struct {
		name     string
		in       []byte
		maxPData uint32
		err      error
	}{
		{"P-DATA over our maximum", hdr(PDUPData, 16385), 16384, ErrPDUTooLong},
		{"P-DATA at our maximum", append(hdr(PDUPData, 16384), make([]byte, 16384)...), 16384, nil},
		{"4 GiB claim", hdr(PDUPData, 0xFFFFFFFF), 0, ErrPDUTooLong},
		{"huge A-ASSOCIATE-RQ", hdr(PDUAssociateRQ, maxAssociatePDULength+1), 0, ErrPDUTooLong},
		{"long A-RELEASE-RQ", hdr(PDUReleaseRQ, 5), 0, ErrPDUTooLong},
		{"unknown type with a body", hdr(0x42, 100), 0, ErrPDUTooLong},
		{"truncated body", append(hdr(PDUPData, 100), 1, 2, 3), 0, io.ErrUnexpectedEOF},
		{"truncated header", []byte{4, 0, 0}, 0, io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &countingReader{r: bytes.NewReader(c.in)}
			_, buf, err := ReadPDU(r, nil, c.maxPData)
			if !errors.Is(err, c.err) && !(c.err == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, c.err)
			}
			if errors.Is(err, ErrPDUTooLong) && (cap(buf) > 0 || r.n != pduHeaderLen) {
				t.Errorf("rejected PDU: allocated %d, read %d bytes", cap(buf), r.n)
			}
		})
	}
}

func TestForPDVs(t *testing.T) {
	pdv := func(n uint32, pcid, mch byte, data ...byte) []byte {
		return append(append(binary.BigEndian.AppendUint32(nil, n), pcid, mch), data...)
	}
	var got []PDV
	err := ForPDVs(append(pdv(4, 1, 3, 'a', 'b'), pdv(3, 3, 0, 'c')...), func(p PDV) error {
		got = append(got, PDV{ContextID: p.ContextID, Command: p.Command, Last: p.Last, Data: append([]byte(nil), p.Data...)})
		return nil
	})
	want := []PDV{{ContextID: 1, Command: true, Last: true, Data: []byte("ab")}, {ContextID: 3, Data: []byte("c")}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"empty":          nil,
		"length 1":       pdv(1, 1, 0),
		"length overrun": pdv(10, 1, 0, 'a'),
		"bad MCH":        pdv(2, 1, 4),
		"even context":   pdv(2, 2, 0),
		"short header":   {0, 0, 0, 2, 1},
	} {
		if err := ForPDVs(b, func(PDV) error { return nil }); !errors.Is(err, errInvalidPDU) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestStateTable spot-checks PS3.8 Table 9-10 and that every defined
// action leads to a state.
func TestStateTable(t *testing.T) {
	for _, c := range []struct {
		s state
		e event
		a action
		n state
	}{
		{sta1, evt5, ae5, sta2},
		{sta2, evt6, ae6, sta3},
		{sta2, evt10, aa1, sta13},
		{sta2, evt18, aa2, sta1},
		{sta3, evt7, ae7, sta6},
		{sta3, evt8, ae8, sta13},
		{sta6, evt10, dt2, sta6},
		{sta6, evt6, aa8, sta13},
		{sta6, evt12, ar2, sta8},
		{sta6, evt13, aa8, sta13},
		{sta6, evt16, aa3, sta1},
		{sta6, evt17, aa4, sta1},
		{sta6, evt19, aa8, sta13},
		{sta7, evt13, ar3, sta1},
		{sta7, evt10, ar6, sta7},
		{sta8, evt14, ar4, sta13},
		{sta10, evt13, ar10, sta12},
		{sta11, evt13, ar3, sta1},
		{sta13, evt17, ar5, sta1},
		{sta13, evt10, aa6, sta13},
		{sta13, evt6, aa7, sta13},
		{sta13, evt18, aa2, sta1},
	} {
		m := machine{state: c.s}
		a, err := m.step(c.e, sta3)
		if err != nil || a != c.a || m.state != c.n {
			t.Errorf("%s + %s: %s -> %s (%v), want %s -> %s", c.s, c.e, a, m.state, err, c.a, c.n)
		}
	}
	// Release collision: the requestor goes to Sta9, the acceptor to Sta10.
	for _, req := range []bool{true, false} {
		m := machine{state: sta7, requestor: req}
		m.step(evt12, 0)
		if want := map[bool]state{true: sta9, false: sta10}[req]; m.state != want {
			t.Errorf("collision (requestor %v): %s, want %s", req, m.state, want)
		}
	}
	for s := sta1; s <= sta13; s++ {
		for e := evt1; e <= evt19; e++ {
			if a := transition(s, e); a != actNone && a != ae6 && a != ar8 && nextState(a, 0) == 0 {
				t.Errorf("%s + %s: action %s has no next state", s, e, a)
			}
		}
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []*command{
		{Field: cStoreRQ, MessageID: 7, AffectedSOPClass: "1.2.840.10008.5.1.4.1.1.2", AffectedSOPInstance: "1.2.3.4.5", Priority: 1, DataSet: true, HasMoveOriginator: true, MoveOriginatorAE: "MOVER", MoveOriginatorID: 3},
		{Field: cMoveRSP, RespondedTo: 9, AffectedSOPClass: dicom.StudyRootQueryRetrieveMove, Status: StatusPending, HasStatus: true, HasCounters: true, HasRemaining: true, Remaining: 5, Completed: 1, Failed: 2, Warning: 3},
		{Field: cFindRSP, RespondedTo: 1, Status: StatusDataSetDoesNotMatchSOPClass, HasStatus: true, ErrorComment: "bad level", OffendingElements: []dicom.Tag{0x00080052}},
		{Field: cCancelRQ, RespondedTo: 4},
	} {
		got, err := decodeCommand(c.encode())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, c)
		}
	}
	if _, err := decodeCommand([]byte{1, 0, 0, 0, 2, 0, 0, 0, 1, 2}); err == nil {
		t.Error("element outside group 0000 accepted")
	}
}
