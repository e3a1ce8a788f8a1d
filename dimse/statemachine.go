package dimse

import "fmt"

// state is a state of the DICOM Upper Layer protocol machine (PS3.8 Table
// 9-1).
type state uint8

const (
	sta1  state = iota + 1 // Idle
	sta2                   // Transport connection open, awaiting A-ASSOCIATE-RQ PDU
	sta3                   // Awaiting local A-ASSOCIATE response primitive
	sta4                   // Awaiting transport connection opening to complete
	sta5                   // Awaiting A-ASSOCIATE-AC or A-ASSOCIATE-RJ PDU
	sta6                   // Association established, ready for data transfer
	sta7                   // Awaiting A-RELEASE-RP PDU
	sta8                   // Awaiting local A-RELEASE response primitive
	sta9                   // Release collision requestor side: awaiting A-RELEASE response
	sta10                  // Release collision acceptor side: awaiting A-RELEASE-RP PDU
	sta11                  // Release collision requestor side: awaiting A-RELEASE-RP PDU
	sta12                  // Release collision acceptor side: awaiting A-RELEASE response
	sta13                  // Awaiting transport connection close indication
)

func (s state) String() string { return fmt.Sprintf("Sta%d", uint8(s)) }

// event is an event of the protocol machine (PS3.8 Table 9-2).
type event uint8

const (
	evt1  event = iota + 1 // A-ASSOCIATE request (local user)
	evt2                   // Transport connect confirmation (local transport service)
	evt3                   // A-ASSOCIATE-AC PDU received
	evt4                   // A-ASSOCIATE-RJ PDU received
	evt5                   // Transport connection indication
	evt6                   // A-ASSOCIATE-RQ PDU received
	evt7                   // A-ASSOCIATE response primitive (accept)
	evt8                   // A-ASSOCIATE response primitive (reject)
	evt9                   // P-DATA request primitive
	evt10                  // P-DATA-TF PDU received
	evt11                  // A-RELEASE request primitive
	evt12                  // A-RELEASE-RQ PDU received
	evt13                  // A-RELEASE-RP PDU received
	evt14                  // A-RELEASE response primitive
	evt15                  // A-ABORT request primitive
	evt16                  // A-ABORT PDU received
	evt17                  // Transport connection closed indication
	evt18                  // ARTIM timer expired
	evt19                  // Unrecognized or invalid PDU received
)

func (e event) String() string { return fmt.Sprintf("Evt%d", uint8(e)) }

// pduEvent maps a received PDU type to its event; unknown types are Evt19.
func pduEvent(t PDUType) event {
	switch t {
	case PDUAssociateAC:
		return evt3
	case PDUAssociateRJ:
		return evt4
	case PDUAssociateRQ:
		return evt6
	case PDUPData:
		return evt10
	case PDUReleaseRQ:
		return evt12
	case PDUReleaseRP:
		return evt13
	case PDUAbort:
		return evt16
	}
	return evt19
}

// action is an action of the protocol machine (PS3.8 Tables 9-6 to 9-9).
type action uint8

const (
	actNone action = iota // the event is not valid in this state (a local programming error)
	ae1                   // issue TRANSPORT CONNECT request
	ae2                   // send A-ASSOCIATE-RQ PDU
	ae3                   // issue A-ASSOCIATE confirmation (accept)
	ae4                   // issue A-ASSOCIATE confirmation (reject), close transport
	ae5                   // issue transport connection response, start ARTIM
	ae6                   // stop ARTIM, examine A-ASSOCIATE-RQ
	ae7                   // send A-ASSOCIATE-AC PDU
	ae8                   // send A-ASSOCIATE-RJ PDU, start ARTIM
	dt1                   // send P-DATA-TF PDU
	dt2                   // issue P-DATA indication
	ar1                   // send A-RELEASE-RQ PDU
	ar2                   // issue A-RELEASE indication
	ar3                   // issue A-RELEASE confirmation, close transport
	ar4                   // send A-RELEASE-RP PDU, start ARTIM
	ar5                   // stop ARTIM
	ar6                   // issue P-DATA indication (awaiting release reply)
	ar7                   // send P-DATA-TF PDU (release indicated)
	ar8                   // issue A-RELEASE indication (release collision)
	ar9                   // send A-RELEASE-RP PDU (collision, requestor)
	ar10                  // issue A-RELEASE confirmation (collision, acceptor)
	aa1                   // send A-ABORT PDU (service user), start ARTIM
	aa2                   // stop ARTIM, close transport
	aa3                   // issue A-ABORT / A-P-ABORT indication, close transport
	aa4                   // issue A-P-ABORT indication
	aa5                   // stop ARTIM
	aa6                   // ignore PDU
	aa7                   // send A-ABORT PDU
	aa8                   // send A-ABORT PDU (service provider), issue A-P-ABORT indication, start ARTIM
)

var actionNames = [...]string{"none", "AE-1", "AE-2", "AE-3", "AE-4", "AE-5", "AE-6", "AE-7", "AE-8",
	"DT-1", "DT-2", "AR-1", "AR-2", "AR-3", "AR-4", "AR-5", "AR-6", "AR-7", "AR-8", "AR-9", "AR-10",
	"AA-1", "AA-2", "AA-3", "AA-4", "AA-5", "AA-6", "AA-7", "AA-8"}

func (a action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

// transition is PS3.8 Table 9-10: the action for event e in state s.
func transition(s state, e event) action {
	// States 6 to 12 share most of their columns.
	established := s >= sta6 && s <= sta12
	switch e {
	case evt1:
		if s == sta1 {
			return ae1
		}
	case evt2:
		if s == sta4 {
			return ae2
		}
	case evt3, evt4:
		switch {
		case s == sta2:
			return aa1
		case s == sta3 || established:
			return aa8
		case s == sta5 && e == evt3:
			return ae3
		case s == sta5:
			return ae4
		case s == sta13:
			return aa6
		}
	case evt5:
		if s == sta1 {
			return ae5
		}
	case evt6:
		switch {
		case s == sta2:
			return ae6
		case s == sta3 || s == sta5 || established:
			return aa8
		case s == sta13:
			return aa7
		}
	case evt7:
		if s == sta3 {
			return ae7
		}
	case evt8:
		if s == sta3 {
			return ae8
		}
	case evt9:
		switch s {
		case sta6:
			return dt1
		case sta8:
			return ar7
		}
	case evt10:
		switch {
		case s == sta2:
			return aa1
		case s == sta6:
			return dt2
		case s == sta7:
			return ar6
		case s == sta3 || s == sta5 || established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt11:
		if s == sta6 {
			return ar1
		}
	case evt12:
		switch {
		case s == sta2:
			return aa1
		case s == sta6:
			return ar2
		case s == sta7:
			return ar8
		case s == sta3 || s == sta5 || established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt13:
		switch {
		case s == sta2:
			return aa1
		case s == sta7 || s == sta11:
			return ar3
		case s == sta10:
			return ar10
		case s == sta3 || s == sta5 || established:
			return aa8
		case s == sta13:
			return aa6
		}
	case evt14:
		switch s {
		case sta8, sta12:
			return ar4
		case sta9:
			return ar9
		}
	case evt15:
		switch {
		case s == sta4:
			return aa2
		case s == sta3 || s == sta5 || established:
			return aa1
		}
	case evt16:
		switch {
		case s == sta2 || s == sta13:
			return aa2
		case s == sta3 || s == sta5 || established:
			return aa3
		}
	case evt17:
		switch {
		case s == sta2:
			return aa5
		case s >= sta3 && s <= sta12:
			return aa4
		case s == sta13:
			return ar5
		}
	case evt18:
		if s == sta2 || s == sta13 {
			return aa2
		}
	case evt19:
		switch {
		case s == sta2:
			return aa1
		case s == sta3 || s == sta5 || established:
			return aa8
		case s == sta13:
			return aa7
		}
	}
	return actNone
}

// nextState is the state an action leads to. AE-6 and AR-8 have two
// outcomes; the caller passes the alternative in alt.
func nextState(a action, alt state) state {
	switch a {
	case ae1:
		return sta4
	case ae2:
		return sta5
	case ae3, ae7, dt1, dt2:
		return sta6
	case ae4, ar3, aa2, aa3, aa4, aa5, ar5:
		return sta1
	case ae5:
		return sta2
	case ae6, ar8:
		return alt
	case ae8, ar4, aa1, aa6, aa7, aa8:
		return sta13
	case ar1, ar6:
		return sta7
	case ar2, ar7:
		return sta8
	case ar9:
		return sta11
	case ar10:
		return sta12
	}
	return 0
}

// machine tracks the protocol state of one association.
type machine struct {
	state state
	// requestor records which side requested the association, for the
	// release collision (AR-8).
	requestor bool
}

// step applies event e and returns the action to perform. alt chooses the
// outcome of AE-6 (sta3 to examine, sta13 when rejected outright).
func (m *machine) step(e event, alt state) (action, error) {
	a := transition(m.state, e)
	if a == actNone {
		return a, fmt.Errorf("dimse: %s is not valid in %s", e, m.state)
	}
	if a == ar8 {
		alt = sta10
		if m.requestor {
			alt = sta9
		}
	}
	m.state = nextState(a, alt)
	return a, nil
}
