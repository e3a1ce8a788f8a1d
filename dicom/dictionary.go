package dicom

import "sort"

// DictEntry describes a data element in the PS3.6 data dictionary.
type DictEntry struct {
	Tag     Tag
	VR      VR // may be a pseudo-VR such as VRUSorSS; see ResolveVR
	VM      string
	Keyword string
	Retired bool
}

// repeatingEntry is a dictionary entry for a repeating group or element
// range such as (60xx,3000) Overlay Data.
type repeatingEntry struct {
	GroupLo, GroupHi uint16
	GroupStep        uint16
	ElemLo, ElemHi   uint16
	DictEntry
}

func (r *repeatingEntry) matches(t Tag) bool {
	g, e := t.Group(), t.Element()
	if g < r.GroupLo || g > r.GroupHi || e < r.ElemLo || e > r.ElemHi {
		return false
	}
	return r.GroupStep == 1 || (g-r.GroupLo)%r.GroupStep == 0
}

// LookupTag returns the dictionary entry for t. Group length elements,
// private creators and repeating groups are answered too; other private
// tags are not in the dictionary.
func LookupTag(t Tag) (DictEntry, bool) {
	i := sort.Search(len(dictionary), func(i int) bool { return dictionary[i].Tag >= t })
	if i < len(dictionary) && dictionary[i].Tag == t {
		return dictionary[i], true
	}
	switch {
	case t.IsGroupLength():
		return DictEntry{Tag: t, VR: UL, VM: "1", Keyword: "GroupLength"}, true
	case t.IsPrivateCreator():
		return DictEntry{Tag: t, VR: LO, VM: "1", Keyword: "PrivateCreator"}, true
	case t.IsPrivate():
		return DictEntry{}, false
	}
	for i := range repeatingDictionary {
		if r := &repeatingDictionary[i]; r.matches(t) {
			e := r.DictEntry
			e.Tag = t
			return e, true
		}
	}
	return DictEntry{}, false
}

// LookupKeyword returns the dictionary entry whose keyword is kw.
func LookupKeyword(kw string) (DictEntry, bool) {
	i := sort.Search(len(keywordIndex), func(i int) bool { return dictionary[keywordIndex[i]].Keyword >= kw })
	if i < len(keywordIndex) && dictionary[keywordIndex[i]].Keyword == kw {
		return dictionary[keywordIndex[i]], true
	}
	for i := range repeatingDictionary {
		if repeatingDictionary[i].Keyword == kw {
			return repeatingDictionary[i].DictEntry, true
		}
	}
	return DictEntry{}, false
}

// ParseTagOrKeyword accepts a keyword ("PatientName") or a tag in hex
// ("00100010", "(0010,0010)"), as QIDO-RS and includefield do.
func ParseTagOrKeyword(s string) (Tag, error) {
	if e, ok := LookupKeyword(s); ok {
		return e.Tag, nil
	}
	return ParseTag(s)
}

// DictionaryLen reports the number of exact (non-repeating) dictionary entries.
func DictionaryLen() int { return len(dictionary) }

// ResolveVR turns a dictionary pseudo-VR into the VR to use when a data set
// gives no explicit VR (implicit VR encoding), following PS3.5 Annex A.1:
// OW for pixel data and "OB or OW" data, US or SS by Pixel Representation
// (pixelRep 1 = signed), and UN for tags the dictionary does not know.
func ResolveVR(t Tag, pixelRep uint16) VR {
	e, ok := LookupTag(t)
	if !ok {
		return UN
	}
	switch e.VR {
	case VRUSorSS:
		if pixelRep == 1 {
			return SS
		}
		return US
	case VROBorOW, VRPixel, VRUSorSSLT, VRUSorOW:
		return OW
	case VRNone:
		return UN
	}
	return e.VR
}
