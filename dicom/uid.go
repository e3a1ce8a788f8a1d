package dicom

import (
	"crypto/rand"
	"math/big"
	"sort"
	"strings"
)

// UIDType classifies entries of the PS3.6 Annex A UID registry.
type UIDType uint8

const (
	UIDTypeSOPClass UIDType = iota + 1
	UIDTypeStorage
	UIDTypeQueryRetrieve
	UIDTypeTransferSyntax
	UIDTypeApplicationContext
	UIDTypeWellKnownInstance
)

// UIDEntry is one registered UID.
type UIDEntry struct {
	UID     string
	Keyword string
	Name    string
	Type    UIDType
	Retired bool
}

// Well-known UIDs the services refer to by name.
const (
	VerificationSOPClass         = "1.2.840.10008.1.1"
	ApplicationContextName       = "1.2.840.10008.3.1.1.1"
	PatientRootQueryRetrieveFind = "1.2.840.10008.5.1.4.1.2.1.1"
	PatientRootQueryRetrieveMove = "1.2.840.10008.5.1.4.1.2.1.2"
	PatientRootQueryRetrieveGet  = "1.2.840.10008.5.1.4.1.2.1.3"
	StudyRootQueryRetrieveFind   = "1.2.840.10008.5.1.4.1.2.2.1"
	StudyRootQueryRetrieveMove   = "1.2.840.10008.5.1.4.1.2.2.2"
	StudyRootQueryRetrieveGet    = "1.2.840.10008.5.1.4.1.2.2.3"
	ImplementationClassUID       = "2.25.285655464522692294685934991494972765681" // Medimint's implementation class: a 2.25 UUID UID, no registered root needed
	ImplementationVersionName    = "MEDIMINT_01"
	maxUIDLength                 = 64
)

// LookupUID returns the registry entry for uid.
func LookupUID(uid string) (UIDEntry, bool) {
	if ts, ok := LookupTransferSyntax(uid); ok {
		return UIDEntry{UID: ts.UID, Keyword: ts.Keyword, Name: ts.Name, Type: UIDTypeTransferSyntax, Retired: ts.Retired}, true
	}
	i := sort.Search(len(uidRegistry), func(i int) bool { return uidRegistry[i].UID >= uid })
	if i < len(uidRegistry) && uidRegistry[i].UID == uid {
		return uidRegistry[i], true
	}
	return UIDEntry{}, false
}

// StorageSOPClasses returns every Storage SOP Class in the registry.
func StorageSOPClasses() []UIDEntry {
	var out []UIDEntry
	for _, e := range uidRegistry {
		if e.Type == UIDTypeStorage {
			out = append(out, e)
		}
	}
	return out
}

// IsStorageSOPClass reports whether uid is a registered Storage SOP Class.
func IsStorageSOPClass(uid string) bool {
	e, ok := LookupUID(uid)
	return ok && e.Type == UIDTypeStorage
}

// NewUID returns a fresh UID under the 2.25 root: the decimal form of a
// random (version 4) UUID, as PS3.5 B.2 describes.
func NewUID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go >= 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b[:]).String()
}

// ValidUID reports whether s is a syntactically valid UID (PS3.5 9.1):
// at most 64 characters, dot-separated numeric components without leading
// zeros.
func ValidUID(s string) bool {
	if s == "" || len(s) > maxUIDLength {
		return false
	}
	for _, c := range strings.Split(s, ".") {
		if c == "" || (len(c) > 1 && c[0] == '0') {
			return false
		}
		for i := 0; i < len(c); i++ {
			if c[i] < '0' || c[i] > '9' {
				return false
			}
		}
	}
	return true
}
