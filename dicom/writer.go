package dicom

import (
	"bufio"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
)

// WriteOptions controls writing.
type WriteOptions struct {
	// Bulk supplies the value of an element that was read with
	// ReadOptions.SkipBulk (Value nil, Bulk set), little endian, exactly
	// Bulk.Length bytes; or, for encapsulated pixel data whose fragments
	// were not loaded, the fragments' bytes one after the other. The writer
	// streams from it and never buffers the whole value. If the returned
	// reader is an io.Closer it is closed.
	Bulk func(e *Element) (io.Reader, error)
}

// encoder writes data sets in one encoding.
type encoder struct {
	w    *bufio.Writer
	en   dsEncoding
	opts WriteOptions
	hdr  [12]byte
	swap []byte // scratch for big endian values
}

// WriteDataset writes ds, without preamble or File Meta Information, in
// transfer syntax ts: implicit or explicit VR, little or big endian,
// deflated. Sequences get defined lengths unless Element.UndefinedLength
// is set; encapsulated pixel data is written as items after a Basic Offset
// Table; odd-length values are padded. Group length elements are
// recomputed.
func WriteDataset(w io.Writer, ds *Dataset, ts TransferSyntax, opts WriteOptions) error {
	var fw *deflater
	if ts.Deflated {
		fw = newDeflater(w)
		w = fw
	}
	c := &encoder{w: bufio.NewWriterSize(w, 64<<10), en: encodingOf(ts), opts: opts}
	if err := c.dataset(ds); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("dicom: writing data set: %w", err)
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return fmt.Errorf("dicom: deflate: %w", err)
		}
	}
	return nil
}

// Write writes f as a Part 10 file: the preamble (zeros if f has none),
// "DICM", the File Meta Information in Explicit VR Little Endian with its
// group length recomputed and Transfer Syntax UID set from
// f.TransferSyntax (missing required elements are filled in), then the
// data set in f.TransferSyntax: in Explicit VR Little Endian if it is
// unset, or if it is a transfer syntax we do not know (see below).
func (f *File) Write(w io.Writer, opts WriteOptions) error {
	ts := f.TransferSyntax
	if _, known := LookupTransferSyntax(ts.UID); !known {
		// A reader cannot learn the data set's encoding from a UID it
		// does not know; it has to guess from the data, and a guess can
		// go wrong whatever order the elements come in (a group 0000 or
		// 0909 tag reads the same in both byte orders). Every
		// encapsulated transfer syntax, which is what the reader takes an
		// unknown one to be, encodes the data set in Explicit VR Little
		// Endian (PS3.5 A.4), and that is the encoding the reader tries
		// first and keeps whenever the data reads cleanly in it, which
		// what we write always does. Values are held little endian, so
		// nothing is lost.
		uid := ts.UID
		ts, _ = LookupTransferSyntax(ExplicitVRLittleEndian)
		if uid != "" {
			ts = TransferSyntax{UID: uid, Name: uid, Order: le, Encapsulated: true}
		}
	}
	if ts.Order == nil {
		ts.Order = le
	}
	if err := f.writeMeta(w, ts); err != nil {
		return err
	}
	return WriteDataset(w, &f.Dataset, ts, opts)
}

// writeMeta writes the preamble, "DICM" and the File Meta Information
// announcing ts.
func (f *File) writeMeta(w io.Writer, ts TransferSyntax) error {
	meta := f.completeMeta(ts.UID)
	bw := bufio.NewWriterSize(w, 4<<10)
	pre := f.Preamble
	if len(pre) != preambleLen {
		pre = make([]byte, preambleLen)
	}
	bw.Write(pre)
	bw.WriteString(magic)
	c := &encoder{w: bw}
	if err := c.dataset(&meta); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dicom: writing file meta: %w", err)
	}
	return nil
}

// completeMeta returns the meta group to write: f.Meta with its group
// length, Transfer Syntax UID and the required elements PS3.10 7.1 lists.
func (f *File) completeMeta(tsUID string) Dataset {
	m := Dataset{Elements: append([]Element(nil), f.Meta.Elements...)}
	m.Set(NewUint32s(TagFileMetaInformationGroupLength, 0)) // value computed on write
	if m.Get(NewTag(0x0002, 0x0001)) == nil {
		m.Set(Element{Tag: NewTag(0x0002, 0x0001), VR: OB, Value: []byte{0x00, 0x01}})
	}
	for _, p := range [][2]Tag{{TagMediaStorageSOPClassUID, TagSOPClassUID}, {TagMediaStorageSOPInstanceUID, TagSOPInstanceUID}} {
		if m.Get(p[0]) == nil {
			m.Set(NewStrings(p[0], UI, f.Dataset.String(p[1])))
		}
	}
	m.Set(NewStrings(TagTransferSyntaxUID, UI, tsUID))
	if m.Get(NewTag(0x0002, 0x0012)) == nil {
		m.Set(NewStrings(NewTag(0x0002, 0x0012), UI, ImplementationClassUID))
		if m.Get(NewTag(0x0002, 0x0013)) == nil {
			m.Set(NewStrings(NewTag(0x0002, 0x0013), SH, ImplementationVersionName))
		}
	}
	return m
}

// vrOf returns the VR to encode e with.
func vrOf(e *Element) VR {
	switch {
	case e.Fragments != nil:
		return OB
	case e.Items != nil:
		return SQ
	case e.VR.Valid():
		return e.VR
	}
	return ResolveVR(e.Tag, 0)
}

// explicitVR returns the VR written in an explicit VR header: a VR with a
// 16-bit length whose value does not fit is written as UN (PS3.5 6.2.2).
func explicitVR(vr VR, n int64) VR {
	if !vr.LongLength() && n > 0xFFFF {
		return UN
	}
	return vr
}

// headerLen is the length of the header c.header writes.
func (c *encoder) headerLen(t Tag, vr VR, n int64) int64 {
	if c.en.implicit || t.Group() == 0xFFFE || !explicitVR(vr, n).LongLength() {
		return 8
	}
	return 12
}

// valueLen returns the encoded length of e's value (padded), or -1 for
// undefined length, and the content length counting delimiters.
func (c *encoder) valueLen(e *Element) (n int64, content int64) {
	switch {
	case e.Fragments != nil:
		total := int64(8 + 4*len(e.Fragments.BasicOffsetTable))
		for _, fr := range e.Fragments.Items {
			total += 8 + pad(int64(fr.Length))
		}
		return -1, total + 8
	case vrOf(e) == SQ:
		var total int64
		for _, it := range e.Items {
			total += 8 + c.datasetLen(it)
			if e.UndefinedLength {
				total += 8
			}
		}
		if e.UndefinedLength {
			return -1, total + 8
		}
		return total, total
	case e.Value == nil && e.Bulk != nil:
		return pad(e.Bulk.Length), pad(e.Bulk.Length)
	}
	n = pad(int64(len(e.Value)))
	return n, n
}

func pad(n int64) int64 { return n + n&1 }

func (c *encoder) elementLen(e *Element) int64 {
	n, content := c.valueLen(e)
	return c.headerLen(e.Tag, vrOf(e), n) + content
}

func (c *encoder) datasetLen(ds *Dataset) int64 {
	var total int64
	for i := range ds.Elements {
		total += c.elementLen(&ds.Elements[i])
	}
	return total
}

func (c *encoder) dataset(ds *Dataset) error {
	for i := range ds.Elements {
		e := &ds.Elements[i]
		if e.Tag.IsGroupLength() && e.VR == UL && e.Items == nil && len(e.Value) == 4 {
			// Group length: recompute for what we write.
			var n int64
			for j := i + 1; j < len(ds.Elements) && ds.Elements[j].Tag.Group() == e.Tag.Group(); j++ {
				n += c.elementLen(&ds.Elements[j])
			}
			gl := NewUint32s(e.Tag, uint32(n))
			if err := c.element(&gl); err != nil {
				return err
			}
			continue
		}
		if err := c.element(e); err != nil {
			return err
		}
	}
	return nil
}

func (c *encoder) putTag(b []byte, t Tag) {
	if c.en.big {
		binary.BigEndian.PutUint16(b, t.Group())
		binary.BigEndian.PutUint16(b[2:], t.Element())
		return
	}
	binary.LittleEndian.PutUint16(b, t.Group())
	binary.LittleEndian.PutUint16(b[2:], t.Element())
}

func (c *encoder) put32(b []byte, v uint32) {
	if c.en.big {
		binary.BigEndian.PutUint32(b, v)
		return
	}
	binary.LittleEndian.PutUint32(b, v)
}

// header writes an element header; n < 0 is undefined length.
func (c *encoder) header(t Tag, vr VR, n int64) {
	b := c.hdr[:]
	c.putTag(b, t)
	length := uint32(undefinedLength)
	if n >= 0 {
		length = uint32(n)
	}
	if c.en.implicit || t.Group() == 0xFFFE {
		c.put32(b[4:], length)
		c.w.Write(b[:8])
		return
	}
	vr = explicitVR(vr, n)
	b[4], b[5] = byte(vr>>8), byte(vr)
	if vr.LongLength() {
		b[6], b[7] = 0, 0
		c.put32(b[8:], length)
		c.w.Write(b[:12])
		return
	}
	if c.en.big {
		binary.BigEndian.PutUint16(b[6:], uint16(length))
	} else {
		binary.LittleEndian.PutUint16(b[6:], uint16(length))
	}
	c.w.Write(b[:8])
}

func (c *encoder) element(e *Element) error {
	vr := vrOf(e)
	n, _ := c.valueLen(e)
	switch {
	case e.Fragments != nil:
		c.header(e.Tag, OB, -1)
		return c.fragments(e)
	case vr == SQ:
		c.header(e.Tag, SQ, n)
		for _, it := range e.Items {
			if e.UndefinedLength {
				c.header(TagItem, 0, -1)
			} else {
				c.header(TagItem, 0, c.datasetLen(it))
			}
			if err := c.dataset(it); err != nil {
				return err
			}
			if e.UndefinedLength {
				c.header(TagItemDelimitationItem, 0, 0)
			}
		}
		if e.UndefinedLength {
			c.header(TagSequenceDelimitationItem, 0, 0)
		}
		return nil
	}
	c.header(e.Tag, vr, n)
	// The value is swapped (big endian) by the VR the header gives it: a
	// value written as UN is bytes, which the reader leaves as they are.
	pad := vr.PaddingByte()
	if !c.en.implicit {
		vr = explicitVR(vr, n)
	}
	if e.Value == nil && e.Bulk != nil {
		if err := c.bulk(e, vr, e.Bulk.Length); err != nil {
			return err
		}
		if e.Bulk.Length%2 == 1 {
			c.w.WriteByte(pad)
		}
		return nil
	}
	if len(e.Value)%2 == 1 {
		// Pad before any byte swapping, so the value read back is the
		// padded little endian value whatever the byte order; text
		// written as UN stays text.
		c.value(append(append(make([]byte, 0, len(e.Value)+1), e.Value...), pad), vr)
		return nil
	}
	c.value(e.Value, vr)
	return nil
}

// value writes v, swapped to big endian if need be.
func (c *encoder) value(v []byte, vr VR) {
	size := vr.WordSize()
	if !c.en.big || size == 1 || vr == UN {
		c.w.Write(v)
		return
	}
	if c.swap == nil {
		c.swap = make([]byte, 32<<10)
	}
	for len(v) > 0 {
		k := copy(c.swap, v)
		swapInPlace(c.swap[:k], size)
		c.w.Write(c.swap[:k])
		v = v[k:]
	}
}

func (c *encoder) bulkReader(e *Element) (io.Reader, func(), error) {
	if c.opts.Bulk == nil {
		return nil, nil, fmt.Errorf("dicom: writing %s: %w", e.Tag, ErrNoBulk)
	}
	r, err := c.opts.Bulk(e)
	if err != nil {
		return nil, nil, fmt.Errorf("dicom: writing %s: bulk value: %w", e.Tag, err)
	}
	done := func() {
		if cl, ok := r.(io.Closer); ok {
			cl.Close()
		}
	}
	return r, done, nil
}

// bulk streams n bytes of e's value from WriteOptions.Bulk.
func (c *encoder) bulk(e *Element, vr VR, n int64) error {
	r, done, err := c.bulkReader(e)
	if err != nil {
		return err
	}
	defer done()
	return c.copyValue(e, r, vr, n)
}

func (c *encoder) copyValue(e *Element, r io.Reader, vr VR, n int64) error {
	if !c.en.big || vr.WordSize() == 1 || vr == UN {
		k, err := io.CopyN(c.w, r, n)
		if err != nil {
			return fmt.Errorf("dicom: writing %s: bulk value (%d of %d bytes): %w", e.Tag, k, n, err)
		}
		return nil
	}
	buf := make([]byte, 32<<10)
	for n > 0 {
		k, err := io.ReadFull(r, buf[:min(n, int64(len(buf)))])
		if err != nil {
			return fmt.Errorf("dicom: writing %s: bulk value: %w", e.Tag, err)
		}
		swapInPlace(buf[:k], vr.WordSize())
		c.w.Write(buf[:k])
		n -= int64(k)
	}
	return nil
}

func (c *encoder) fragments(e *Element) error {
	fr := e.Fragments
	c.header(TagItem, 0, int64(4*len(fr.BasicOffsetTable)))
	var b [4]byte
	for _, off := range fr.BasicOffsetTable {
		c.put32(b[:], off)
		c.w.Write(b[:])
	}
	var src io.Reader
	for i := range fr.Items {
		item := &fr.Items[i]
		c.header(TagItem, 0, pad(int64(item.Length)))
		if item.Data != nil || item.Length == 0 {
			if int64(len(item.Data)) != int64(item.Length) {
				return fmt.Errorf("dicom: writing %s: fragment %d has %d bytes, Length says %d", e.Tag, i, len(item.Data), item.Length)
			}
			c.w.Write(item.Data)
		} else {
			if src == nil {
				r, done, err := c.bulkReader(e)
				if err != nil {
					return err
				}
				defer done()
				src = r
			}
			if err := c.copyValue(e, src, OB, int64(item.Length)); err != nil {
				return err
			}
		}
		if item.Length%2 == 1 {
			c.w.WriteByte(0)
		}
	}
	c.header(TagSequenceDelimitationItem, 0, 0)
	return nil
}

// deflater compresses a data set for Deflated Explicit VR Little Endian:
// raw deflate, the bit stream padded with one null byte to an even length
// (PS3.5 A.5; DIMSE peers refuse an odd-length data set).
type deflater struct {
	fw *flate.Writer
	cw countingWriter
}

func newDeflater(w io.Writer) *deflater {
	d := &deflater{cw: countingWriter{w: w}}
	d.fw, _ = flate.NewWriter(&d.cw, flate.DefaultCompression) // only a bad level fails
	return d
}

func (d *deflater) Write(p []byte) (int, error) { return d.fw.Write(p) }

// Close ends the deflate stream and pads it.
func (d *deflater) Close() error {
	if err := d.fw.Close(); err != nil {
		return err
	}
	if d.cw.n%2 == 1 {
		_, err := d.cw.Write([]byte{0})
		return err
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
