package dicom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ErrNotTranscodable: a conversion between transfer syntaxes that would
// need the pixel data decompressed or compressed; the codec only rewrites
// the encoding of native (uncompressed) data sets.
var ErrNotTranscodable = errors.New("dicom: transfer syntaxes not convertible without a pixel data codec")

// CanTranscode reports whether Transcode converts data sets in from to
// to: the same syntax, or two native ones (Implicit and Explicit VR
// Little Endian, Explicit VR Big Endian, Deflated Explicit VR Little
// Endian).
func CanTranscode(from, to TransferSyntax) bool {
	return from.UID == to.UID || (!from.Encapsulated && !to.Encapsulated)
}

// Transcode rewrites the bare data set read from r (no preamble or File
// Meta Information, as DIMSE carries it), encoded in from, to w encoded
// in to. It streams: one top-level element at a time is held in memory,
// and bulk values (Pixel Data, long binary values) are copied through,
// byte-swapped by their VR's word size when the byte order changes, never
// held whole. Top-level group length elements, retired outside groups
// 0000 and 0002 (PS3.5 7.2), are dropped: their value cannot be known
// before the group is written. The same syntax is copied as is.
func Transcode(w io.Writer, r io.Reader, from, to TransferSyntax) error {
	if from.UID == to.UID {
		if _, err := io.Copy(w, r); err != nil {
			return fmt.Errorf("dicom: transcode: %w", err)
		}
		return nil
	}
	if !CanTranscode(from, to) {
		return fmt.Errorf("%w: %s to %s", ErrNotTranscodable, from.UID, to.UID)
	}
	d := newStreamDecoder(r, ReadOptions{})
	defer d.release()
	d.rs, d.size = nil, -1 // forward only: bulk values are read, never seeked past
	if from.Deflated {
		d.inflate()
	}
	var fw *deflater
	if to.Deflated {
		fw = newDeflater(w)
		w = fw
	}
	c := &encoder{w: bufio.NewWriterSize(w, 64<<10), en: encodingOf(to)}
	if err := c.transcode(d, encodingOf(from)); err != nil {
		return err
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("dicom: transcode: %w", err)
	}
	if fw != nil {
		if err := fw.Close(); err != nil {
			return fmt.Errorf("dicom: deflate: %w", err)
		}
	}
	return nil
}

// transcode copies the top-level data set from d to c.
func (c *encoder) transcode(d *decoder, en dsEncoding) error {
	f := frame{en: en, end: -1, top: true, depth: 0}
	for !d.atEOF() {
		h, err := d.readHeader(en, f.pixelRep)
		if err != nil {
			return err
		}
		switch h.tag {
		case TagItemDelimitationItem, TagSequenceDelimitationItem:
			continue // stray delimiters: skipped, as ReadDataset does
		case TagItem:
			return d.errAt(h.offset, h.tag, fmt.Errorf("%w: item outside a sequence", ErrMalformed))
		}
		n := int64(h.length)
		if h.length != undefinedLength && h.tag.IsGroupLength() {
			if err := d.skip(n); err != nil {
				return d.errAt(h.offset, h.tag, err)
			}
			continue
		}
		if h.length != undefinedLength && h.vr != SQ && (isPixelData(h.tag) || h.vr.IsBulk() && n > defaultBulkThreshold) {
			if err := c.copyBulk(d, h, en.big); err != nil {
				return err
			}
			continue
		}
		e := Element{Tag: h.tag, VR: h.vr}
		if err := d.readValue(&e, h, f); err != nil {
			return err
		}
		if e.Tag == TagPixelRepresentation && len(e.Value) >= 2 {
			f.pixelRep = le.Uint16(e.Value)
		}
		if err := c.element(&e); err != nil {
			return err
		}
	}
	return nil
}

// copyBulk writes the header of h and copies its value from d, converting
// the byte order from srcBig to c's.
func (c *encoder) copyBulk(d *decoder, h header, srcBig bool) error {
	n := int64(h.length)
	c.header(h.tag, h.vr, pad(n))
	vr := h.vr
	if !c.en.implicit {
		vr = explicitVR(vr, pad(n))
	}
	size := vr.WordSize()
	if srcBig == c.en.big || size <= 1 || vr == UN {
		k, err := io.CopyN(c.w, d.br, n)
		d.off += k
		if err != nil {
			return d.errAt(h.offset, h.tag, ErrValueTooLong)
		}
	} else {
		buf := make([]byte, 32<<10)
		for left := n; left > 0; {
			k, err := io.ReadFull(d.br, buf[:min(left, int64(len(buf)))])
			d.off += int64(k)
			if err != nil {
				return d.errAt(h.offset, h.tag, ErrValueTooLong)
			}
			swapInPlace(buf[:k], size) // the buffer holds whole words: its size is a multiple of 8
			c.w.Write(buf[:k])
			left -= int64(k)
		}
	}
	if n%2 == 1 {
		c.w.WriteByte(vr.PaddingByte())
	}
	return nil
}

// TranscodeFile rewrites the Part 10 file read from r in transfer syntax
// to: the preamble and File Meta Information are kept (Transfer Syntax
// UID set to to), the data set is converted by Transcode.
func TranscodeFile(w io.Writer, r io.Reader, to TransferSyntax) error {
	const window = 64 << 10 // File Meta Information is a few hundred bytes
	br := bufio.NewReaderSize(r, window)
	head, err := br.Peek(window)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("dicom: transcode: %w", err)
	}
	f, err := ParseBytes(head, ReadOptions{StopAtTag: 1, SkipBulk: true})
	if err != nil {
		return fmt.Errorf("dicom: transcode: File Meta Information: %w", err)
	}
	from := f.TransferSyntax
	if !CanTranscode(from, to) {
		return fmt.Errorf("%w: %s to %s", ErrNotTranscodable, from.UID, to.UID)
	}
	if _, err := br.Discard(int(f.DatasetOffset)); err != nil {
		return fmt.Errorf("dicom: transcode: %w", err)
	}
	if err := f.writeMeta(w, to); err != nil {
		return err
	}
	return Transcode(w, br, from, to)
}
