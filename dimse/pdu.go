package dimse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/medimint/medimint/dicom"
)

// PDUType is the first byte of a PDU (PS3.8 9.3).
type PDUType uint8

// PDU types.
const (
	PDUAssociateRQ PDUType = 0x01
	PDUAssociateAC PDUType = 0x02
	PDUAssociateRJ PDUType = 0x03
	PDUPData       PDUType = 0x04
	PDUReleaseRQ   PDUType = 0x05
	PDUReleaseRP   PDUType = 0x06
	PDUAbort       PDUType = 0x07
)

func (t PDUType) String() string {
	switch t {
	case PDUAssociateRQ:
		return "A-ASSOCIATE-RQ"
	case PDUAssociateAC:
		return "A-ASSOCIATE-AC"
	case PDUAssociateRJ:
		return "A-ASSOCIATE-RJ"
	case PDUPData:
		return "P-DATA-TF"
	case PDUReleaseRQ:
		return "A-RELEASE-RQ"
	case PDUReleaseRP:
		return "A-RELEASE-RP"
	case PDUAbort:
		return "A-ABORT"
	}
	return fmt.Sprintf("PDU(0x%02X)", uint8(t))
}

// Item types of the variable fields of association PDUs (PS3.8 9.3.2-9.3.4,
// Annex D).
const (
	itemApplicationContext   = 0x10
	itemPresentationContext  = 0x20
	itemPresentationContextA = 0x21
	itemAbstractSyntax       = 0x30
	itemTransferSyntax       = 0x40
	itemUserInformation      = 0x50
	itemMaxLength            = 0x51
	itemImplementationClass  = 0x52
	itemAsyncOpsWindow       = 0x53
	itemRoleSelection        = 0x54
	itemImplementationVers   = 0x55
	itemUserIdentityRQ       = 0x58
	itemUserIdentityAC       = 0x59
)

const (
	pduHeaderLen = 6
	// maxAssociatePDULength caps A-ASSOCIATE-RQ/AC PDUs, whose size our
	// maximum length does not govern: 128 presentation contexts with a dozen
	// transfer syntaxes each and a Kerberos ticket fit well below it.
	maxAssociatePDULength = 256 << 10
	// hardMaxPDULength caps every PDU whatever the configuration says.
	hardMaxPDULength = 16 << 20
	protocolVersion  = 0x0001
)

// Presentation context results (PS3.8 Table 9-18).
const (
	ResultAcceptance                   = 0
	ResultUserRejection                = 1
	ResultNoReason                     = 2
	ResultAbstractSyntaxNotSupported   = 3
	ResultTransferSyntaxesNotSupported = 4
)

// A-ASSOCIATE-RJ result, source and reason (PS3.8 Table 9-21).
const (
	RejectPermanent = 1
	RejectTransient = 2

	RejectSourceServiceUser         = 1
	RejectSourceServiceProviderACSE = 2
	RejectSourceServiceProviderPres = 3

	// Source 1 (service user).
	RejectNoReason                       = 1
	RejectApplicationContextNotSupported = 2
	RejectCallingAENotRecognized         = 3
	RejectCalledAENotRecognized          = 7
	// Source 2 (ACSE).
	RejectProtocolVersionNotSupported = 2
	// Source 3 (presentation).
	RejectTemporaryCongestion = 1
	RejectLocalLimitExceeded  = 2
)

// A-ABORT source and reason (PS3.8 Table 9-26).
const (
	AbortSourceServiceUser     = 0
	AbortSourceServiceProvider = 2

	AbortReasonNotSpecified          = 0
	AbortReasonUnrecognizedPDU       = 1
	AbortReasonUnexpectedPDU         = 2
	AbortReasonUnrecognizedParameter = 4
	AbortReasonUnexpectedParameter   = 5
	AbortReasonInvalidParameter      = 6
)

// PresentationContext is one presentation context item. In an
// A-ASSOCIATE-RQ it carries the abstract syntax and the proposed transfer
// syntaxes; in an A-ASSOCIATE-AC the result and, if accepted, the one
// transfer syntax chosen.
type PresentationContext struct {
	ID               uint8
	AbstractSyntax   string
	TransferSyntaxes []string
	Result           uint8
}

// RoleSelection is an SCP/SCU Role Selection sub-item (PS3.7 D.3.3.4).
type RoleSelection struct {
	SOPClassUID string
	SCU, SCP    bool
}

// UserIdentity is a User Identity Negotiation sub-item (PS3.7 D.3.3.7).
type UserIdentity struct {
	Type                      uint8 // 1 username, 2 username+passcode, 3 Kerberos, 4 SAML, 5 JWT
	PositiveResponseRequested bool
	Primary, Secondary        []byte
}

// UserInfo is the User Information item (PS3.8 D.1, PS3.7 D.3.3).
type UserInfo struct {
	MaxLength                 uint32 // 0: unlimited
	ImplementationClassUID    string
	ImplementationVersionName string
	// AsyncInvoked/AsyncPerformed are the Asynchronous Operations Window;
	// HasAsync reports whether the sub-item was present.
	HasAsync                     bool
	AsyncInvoked, AsyncPerformed uint16
	Roles                        []RoleSelection
	UserIdentity                 *UserIdentity // RQ only
	UserIdentityResponse         []byte        // AC only; non-nil when present
	// Other sub-items (extended negotiation) are kept verbatim so they can
	// be logged; they are never echoed.
	Other []RawItem
}

// RawItem is an item the codec does not interpret.
type RawItem struct {
	Type  uint8
	Value []byte
}

// AssociatePDU is an A-ASSOCIATE-RQ or A-ASSOCIATE-AC PDU.
type AssociatePDU struct {
	Type               PDUType // PDUAssociateRQ or PDUAssociateAC
	ProtocolVersion    uint16
	CalledAE           string
	CallingAE          string
	ApplicationContext string
	Contexts           []PresentationContext
	UserInfo           UserInfo
}

// RejectPDU is an A-ASSOCIATE-RJ PDU.
type RejectPDU struct {
	Result, Source, Reason uint8
}

func (r *RejectPDU) Error() string {
	return fmt.Sprintf("dimse: association rejected (result %d, source %d, reason %d: %s)", r.Result, r.Source, r.Reason, rejectReasonText(r.Source, r.Reason))
}

func rejectReasonText(source, reason uint8) string {
	switch {
	case source == RejectSourceServiceUser && reason == RejectApplicationContextNotSupported:
		return "application-context-name-not-supported"
	case source == RejectSourceServiceUser && reason == RejectCallingAENotRecognized:
		return "calling-AE-title-not-recognized"
	case source == RejectSourceServiceUser && reason == RejectCalledAENotRecognized:
		return "called-AE-title-not-recognized"
	case source == RejectSourceServiceProviderACSE && reason == RejectProtocolVersionNotSupported:
		return "protocol-version-not-supported"
	case source == RejectSourceServiceProviderPres && reason == RejectTemporaryCongestion:
		return "temporary-congestion"
	case source == RejectSourceServiceProviderPres && reason == RejectLocalLimitExceeded:
		return "local-limit-exceeded"
	}
	return "no-reason-given"
}

// AbortPDU is an A-ABORT PDU.
type AbortPDU struct {
	Source, Reason uint8
}

func (a *AbortPDU) Error() string {
	return fmt.Sprintf("dimse: association aborted (source %d, reason %d)", a.Source, a.Reason)
}

// PDV is one presentation data value item of a P-DATA-TF PDU.
type PDV struct {
	ContextID uint8
	Command   bool // message control header bit 0
	Last      bool // message control header bit 1
	Data      []byte
}

// ErrPDUTooLong is returned by ReadPDU for a PDU whose length field exceeds
// the limit: the caller aborts the association without reading the body.
var ErrPDUTooLong = errors.New("dimse: PDU length exceeds the limit")

// errInvalidPDU marks a PDU whose fields are malformed.
var errInvalidPDU = errors.New("dimse: invalid PDU")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errInvalidPDU}, args...)...)
}

// pduLimit returns the largest PDU length field accepted for type t when
// our advertised maximum P-DATA-TF length is maxPData (0: unlimited, capped
// by hardMaxPDULength).
func pduLimit(t PDUType, maxPData uint32) uint32 {
	switch t {
	case PDUPData:
		if maxPData == 0 || maxPData > hardMaxPDULength {
			return hardMaxPDULength
		}
		return maxPData
	case PDUAssociateRQ, PDUAssociateAC:
		return maxAssociatePDULength
	default:
		// A-ASSOCIATE-RJ, A-RELEASE-*, A-ABORT are 4 bytes; unknown types
		// are read (bounded) only to be rejected.
		return 4
	}
}

// ReadPDU reads one PDU from r into buf (grown as needed) and returns its
// type and body. The length is validated against pduLimit before anything
// is allocated, so a hostile length claim costs nothing.
func ReadPDU(r io.Reader, buf []byte, maxPData uint32) (PDUType, []byte, error) {
	var hdr [pduHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, buf, err
	}
	return readPDUBody(r, hdr, buf, maxPData)
}

func readPDUBody(r io.Reader, hdr [pduHeaderLen]byte, buf []byte, maxPData uint32) (PDUType, []byte, error) {
	t := PDUType(hdr[0])
	n := binary.BigEndian.Uint32(hdr[2:])
	if n > pduLimit(t, maxPData) {
		return t, buf, fmt.Errorf("%w: %s length %d", ErrPDUTooLong, t, n)
	}
	if uint32(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return t, buf, fmt.Errorf("dimse: reading %s body: %w", t, err)
	}
	return t, buf, nil
}

// aeTitle decodes a 16-byte AE title field: leading and trailing spaces are
// not significant (PS3.8 9.3.2).
func aeTitle(b []byte) string { return strings.Trim(string(b), " \x00") }

func putAETitle(dst []byte, ae string) {
	n := copy(dst[:16], ae)
	for i := n; i < 16; i++ {
		dst[i] = ' '
	}
}

// trimUID removes the trailing NUL some implementations pad UIDs with.
func trimUID(b []byte) string { return strings.TrimRight(string(b), "\x00 ") }

// DecodeAssociate decodes the body of an A-ASSOCIATE-RQ or -AC PDU.
func DecodeAssociate(t PDUType, b []byte) (*AssociatePDU, error) {
	if t != PDUAssociateRQ && t != PDUAssociateAC {
		return nil, invalidf("%s is not an association PDU", t)
	}
	if len(b) < 68 {
		return nil, invalidf("%s body of %d bytes is shorter than its fixed fields", t, len(b))
	}
	a := &AssociatePDU{
		Type:            t,
		ProtocolVersion: binary.BigEndian.Uint16(b),
		CalledAE:        aeTitle(b[4:20]),
		CallingAE:       aeTitle(b[20:36]),
	}
	haveAppCtx, haveUserInfo := false, false
	err := forItems(b[68:], 2, func(it uint8, v []byte) error {
		switch it {
		case itemApplicationContext:
			if haveAppCtx {
				return invalidf("second application context item")
			}
			haveAppCtx = true
			a.ApplicationContext = trimUID(v)
		case itemPresentationContext, itemPresentationContextA:
			if (it == itemPresentationContext) != (t == PDUAssociateRQ) {
				return invalidf("presentation context item 0x%02X in %s", it, t)
			}
			pc, err := decodePresentationContext(it, v)
			if err != nil {
				return err
			}
			a.Contexts = append(a.Contexts, pc)
		case itemUserInformation:
			if haveUserInfo {
				return invalidf("second user information item")
			}
			haveUserInfo = true
			return decodeUserInfo(&a.UserInfo, v)
		default:
			return invalidf("unexpected item 0x%02X in %s", it, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveAppCtx {
		return nil, invalidf("%s without application context", t)
	}
	return a, nil
}

// forItems walks items with a 1-byte type, 1 reserved byte and a big-endian
// length of lenSize bytes, checking every length against the remainder.
func forItems(b []byte, lenSize int, fn func(t uint8, v []byte) error) error {
	hdr := 2 + lenSize
	for len(b) > 0 {
		if len(b) < hdr {
			return invalidf("truncated item header (%d bytes left)", len(b))
		}
		var n int
		if lenSize == 2 {
			n = int(binary.BigEndian.Uint16(b[2:]))
		} else {
			n = int(binary.BigEndian.Uint32(b[2:]))
		}
		if n > len(b)-hdr {
			return invalidf("item 0x%02X length %d exceeds the %d bytes left", b[0], n, len(b)-hdr)
		}
		if err := fn(b[0], b[hdr:hdr+n]); err != nil {
			return err
		}
		b = b[hdr+n:]
	}
	return nil
}

func decodePresentationContext(it uint8, v []byte) (PresentationContext, error) {
	if len(v) < 4 {
		return PresentationContext{}, invalidf("presentation context item of %d bytes", len(v))
	}
	pc := PresentationContext{ID: v[0]}
	if it == itemPresentationContextA {
		pc.Result = v[2]
	}
	haveAbstract := false
	err := forItems(v[4:], 2, func(st uint8, sv []byte) error {
		switch {
		case st == itemAbstractSyntax && it == itemPresentationContext:
			if haveAbstract {
				return invalidf("presentation context %d: second abstract syntax", pc.ID)
			}
			haveAbstract = true
			pc.AbstractSyntax = trimUID(sv)
		case st == itemTransferSyntax:
			pc.TransferSyntaxes = append(pc.TransferSyntaxes, trimUID(sv))
		default:
			return invalidf("presentation context %d: unexpected sub-item 0x%02X", pc.ID, st)
		}
		return nil
	})
	if err != nil {
		return pc, err
	}
	if it == itemPresentationContext && (!haveAbstract || len(pc.TransferSyntaxes) == 0) {
		return pc, invalidf("presentation context %d lacks abstract or transfer syntax", pc.ID)
	}
	if it == itemPresentationContextA && pc.Result == ResultAcceptance && len(pc.TransferSyntaxes) != 1 {
		return pc, invalidf("accepted presentation context %d has %d transfer syntaxes", pc.ID, len(pc.TransferSyntaxes))
	}
	return pc, nil
}

func decodeUserInfo(u *UserInfo, v []byte) error {
	return forItems(v, 2, func(st uint8, sv []byte) error {
		switch st {
		case itemMaxLength:
			if len(sv) != 4 {
				return invalidf("maximum length sub-item of %d bytes", len(sv))
			}
			u.MaxLength = binary.BigEndian.Uint32(sv)
		case itemImplementationClass:
			u.ImplementationClassUID = trimUID(sv)
		case itemImplementationVers:
			u.ImplementationVersionName = strings.TrimRight(string(sv), " \x00")
		case itemAsyncOpsWindow:
			if len(sv) != 4 {
				return invalidf("asynchronous operations window sub-item of %d bytes", len(sv))
			}
			u.HasAsync = true
			u.AsyncInvoked = binary.BigEndian.Uint16(sv)
			u.AsyncPerformed = binary.BigEndian.Uint16(sv[2:])
		case itemRoleSelection:
			if len(sv) < 2 {
				return invalidf("role selection sub-item of %d bytes", len(sv))
			}
			n := int(binary.BigEndian.Uint16(sv))
			if len(sv) != 2+n+2 {
				return invalidf("role selection sub-item: UID length %d in %d bytes", n, len(sv))
			}
			u.Roles = append(u.Roles, RoleSelection{SOPClassUID: trimUID(sv[2 : 2+n]), SCU: sv[2+n] == 1, SCP: sv[3+n] == 1})
		case itemUserIdentityRQ:
			if len(sv) < 4 {
				return invalidf("user identity sub-item of %d bytes", len(sv))
			}
			id := &UserIdentity{Type: sv[0], PositiveResponseRequested: sv[1] == 1}
			n := int(binary.BigEndian.Uint16(sv[2:]))
			if 4+n+2 > len(sv) {
				return invalidf("user identity primary field length %d in %d bytes", n, len(sv))
			}
			id.Primary = append([]byte(nil), sv[4:4+n]...)
			m := int(binary.BigEndian.Uint16(sv[4+n:]))
			if 4+n+2+m != len(sv) {
				return invalidf("user identity secondary field length %d in %d bytes", m, len(sv))
			}
			id.Secondary = append([]byte(nil), sv[6+n:]...)
			u.UserIdentity = id
		case itemUserIdentityAC:
			if len(sv) < 2 || int(binary.BigEndian.Uint16(sv))+2 != len(sv) {
				return invalidf("user identity response sub-item of %d bytes", len(sv))
			}
			u.UserIdentityResponse = append([]byte{}, sv[2:]...)
		default:
			u.Other = append(u.Other, RawItem{Type: st, Value: append([]byte(nil), sv...)})
		}
		return nil
	})
}

// Encode appends the whole PDU (header included) to dst.
func (a *AssociatePDU) Encode(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, byte(a.Type), 0, 0, 0, 0, 0)
	var fixed [68]byte
	v := a.ProtocolVersion
	if v == 0 {
		v = protocolVersion
	}
	binary.BigEndian.PutUint16(fixed[0:], v)
	putAETitle(fixed[4:20], a.CalledAE)
	putAETitle(fixed[20:36], a.CallingAE)
	dst = append(dst, fixed[:]...)
	appCtx := a.ApplicationContext
	if appCtx == "" {
		appCtx = dicom.ApplicationContextName
	}
	dst = appendItem(dst, itemApplicationContext, []byte(appCtx))
	for _, pc := range a.Contexts {
		it := byte(itemPresentationContext)
		if a.Type == PDUAssociateAC {
			it = itemPresentationContextA
		}
		mark := len(dst)
		dst = append(dst, it, 0, 0, 0, pc.ID, 0, 0, 0)
		if a.Type == PDUAssociateAC {
			dst[mark+6] = pc.Result
		} else {
			dst = appendItem(dst, itemAbstractSyntax, []byte(pc.AbstractSyntax))
		}
		for _, ts := range pc.TransferSyntaxes {
			dst = appendItem(dst, itemTransferSyntax, []byte(ts))
		}
		binary.BigEndian.PutUint16(dst[mark+2:], uint16(len(dst)-mark-4))
	}
	mark := len(dst)
	dst = append(dst, itemUserInformation, 0, 0, 0)
	u := &a.UserInfo
	var ml [4]byte
	binary.BigEndian.PutUint32(ml[:], u.MaxLength)
	dst = appendItem(dst, itemMaxLength, ml[:])
	if u.ImplementationClassUID != "" {
		dst = appendItem(dst, itemImplementationClass, []byte(u.ImplementationClassUID))
	}
	if u.HasAsync {
		var w [4]byte
		binary.BigEndian.PutUint16(w[:], u.AsyncInvoked)
		binary.BigEndian.PutUint16(w[2:], u.AsyncPerformed)
		dst = appendItem(dst, itemAsyncOpsWindow, w[:])
	}
	for _, r := range u.Roles {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(r.SOPClassUID)))
		b = append(b, r.SOPClassUID...)
		b = append(b, boolByte(r.SCU), boolByte(r.SCP))
		dst = appendItem(dst, itemRoleSelection, b)
	}
	if u.ImplementationVersionName != "" {
		dst = appendItem(dst, itemImplementationVers, []byte(u.ImplementationVersionName))
	}
	if id := u.UserIdentity; id != nil && a.Type == PDUAssociateRQ {
		b := []byte{id.Type, boolByte(id.PositiveResponseRequested)}
		b = binary.BigEndian.AppendUint16(b, uint16(len(id.Primary)))
		b = append(b, id.Primary...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(id.Secondary)))
		b = append(b, id.Secondary...)
		dst = appendItem(dst, itemUserIdentityRQ, b)
	}
	if u.UserIdentityResponse != nil && a.Type == PDUAssociateAC {
		b := binary.BigEndian.AppendUint16(nil, uint16(len(u.UserIdentityResponse)))
		dst = appendItem(dst, itemUserIdentityAC, append(b, u.UserIdentityResponse...))
	}
	binary.BigEndian.PutUint16(dst[mark+2:], uint16(len(dst)-mark-4))
	binary.BigEndian.PutUint32(dst[start+2:], uint32(len(dst)-start-pduHeaderLen))
	return dst
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendItem(dst []byte, t uint8, v []byte) []byte {
	dst = append(dst, t, 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(v)))
	return append(dst, v...)
}

// encodeShort encodes the 4-byte-body PDUs: A-ASSOCIATE-RJ, A-RELEASE-RQ/RP
// and A-ABORT.
func encodeShort(t PDUType, b1, b2, b3 byte) []byte {
	return []byte{byte(t), 0, 0, 0, 0, 4, 0, b1, b2, b3}
}

// Encode returns the A-ASSOCIATE-RJ PDU.
func (r *RejectPDU) Encode() []byte {
	return encodeShort(PDUAssociateRJ, r.Result, r.Source, r.Reason)
}

// Encode returns the A-ABORT PDU.
func (a *AbortPDU) Encode() []byte {
	return encodeShort(PDUAbort, 0, a.Source, a.Reason)
}

func decodeShort(t PDUType, b []byte) error {
	if len(b) != 4 {
		return invalidf("%s body of %d bytes, want 4", t, len(b))
	}
	return nil
}

// DecodeReject decodes the body of an A-ASSOCIATE-RJ PDU.
func DecodeReject(b []byte) (*RejectPDU, error) {
	if err := decodeShort(PDUAssociateRJ, b); err != nil {
		return nil, err
	}
	return &RejectPDU{Result: b[1], Source: b[2], Reason: b[3]}, nil
}

// DecodeAbort decodes the body of an A-ABORT PDU.
func DecodeAbort(b []byte) (*AbortPDU, error) {
	if err := decodeShort(PDUAbort, b); err != nil {
		return nil, err
	}
	return &AbortPDU{Source: b[2], Reason: b[3]}, nil
}

// ForPDVs walks the PDV items of a P-DATA-TF body. The PDVs' Data alias b.
func ForPDVs(b []byte, fn func(PDV) error) error {
	if len(b) == 0 {
		return invalidf("P-DATA-TF without PDV items")
	}
	for len(b) > 0 {
		if len(b) < 6 {
			return invalidf("truncated PDV item header (%d bytes left)", len(b))
		}
		n := binary.BigEndian.Uint32(b)
		if n < 2 || uint64(n) > uint64(len(b)-4) {
			return invalidf("PDV item length %d with %d bytes left", n, len(b)-4)
		}
		mch := b[5]
		if mch&^3 != 0 {
			return invalidf("PDV message control header 0x%02X", mch)
		}
		if b[4]%2 == 0 {
			return invalidf("PDV presentation context ID %d is even", b[4])
		}
		if err := fn(PDV{ContextID: b[4], Command: mch&1 != 0, Last: mch&2 != 0, Data: b[6 : 4+n]}); err != nil {
			return err
		}
		b = b[4+n:]
	}
	return nil
}

// AppendPDataHeader appends the header of a P-DATA-TF PDU carrying one PDV
// of n data bytes; the caller appends the data.
func AppendPDataHeader(dst []byte, pv PDV, n int) []byte {
	dst = append(dst, byte(PDUPData), 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(n+6))
	dst = binary.BigEndian.AppendUint32(dst, uint32(n+2))
	var mch byte
	if pv.Command {
		mch |= 1
	}
	if pv.Last {
		mch |= 2
	}
	return append(dst, pv.ContextID, mch)
}
