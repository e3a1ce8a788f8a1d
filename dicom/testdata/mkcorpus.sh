#!/usr/bin/env bash
# mkcorpus.sh OUTDIR — build the codec's test corpus with dcmtk.
#
# From the dump sources in corpus/ (dump2dcm) and generated pixel data:
#   allvrs*      every VR, multi-valued and empty values, private creators
#   nested*      nested/empty sequences and items, private sequences
#   charset-*    names in Latin-1, UTF-8, Greek, Cyrillic, ISO 2022 Japanese and Korean
#   ct*          a 512x512x16 signed CT (US/SS by Pixel Representation)
#   mr-mf*       a 3-frame 64x64x16 MR
#   sc-rgb*      an 8-bit RGB secondary capture from img2dcm (BMP), and from
#                JPEG (dcmj2pnm's JPEG of it)
# each in several transfer syntaxes: dcmconv +te/+ti/+tb/+td, sequences with
# undefined lengths (-e), group lengths (+g), trailing padding (+p),
# dcmcjpeg baseline/lossless (+eb/+e1/+el), dcmcrle (RLE), multi-frame with
# a Basic Offset Table and fragmented frames.
# Needs dcmtk and python3 (standard library only). Output is deterministic.
set -euo pipefail
OUT=${1:?usage: mkcorpus.sh OUTDIR}
SRC=$(cd "$(dirname "$0")/corpus" && pwd)
for t in dump2dcm dcmconv dcmcjpeg dcmcrle img2dcm dcmj2pnm python3; do
  command -v "$t" >/dev/null || { echo "mkcorpus.sh: $t missing (apt-get install -y dcmtk)" >&2; exit 1; }
done
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
Q="-q"

# Pixel data: a signed CT phantom, a 3-frame MR ramp, an 8-bit RGB BMP.
python3 - "$W" <<'PY'
import struct, sys
w = sys.argv[1]
rows = cols = 512
ct = bytearray()
for y in range(rows):
    dy = (y - 256) / 230.0
    line = []
    for x in range(cols):
        dx = (x - 256) / 200.0
        v = -1000 if dx*dx + dy*dy > 1 else 40 + ((x * 7 + y * 13) % 64)
        if (x - 300)**2 + (y - 200)**2 < 900:
            v = 1200
        line.append(v)
    ct += struct.pack('<%dh' % cols, *line)
open(w + '/ct.raw', 'wb').write(ct)
mr = bytearray()
for f in range(3):
    for y in range(64):
        mr += struct.pack('<64H', *[(x * 16 + y * 8 + f * 500) % 4096 for x in range(64)])
open(w + '/mr.raw', 'wb').write(mr)
# 64x48 24-bit BMP, bottom-up rows padded to 4 bytes.
bw, bh = 64, 48
rowbytes = (bw * 3 + 3) & ~3
pix = bytearray()
for y in range(bh):
    row = bytearray()
    for x in range(bw):
        row += bytes((x * 4 % 256, y * 5 % 256, (x + y) * 3 % 256))
    pix += row + b'\0' * (rowbytes - len(row))
hdr = b'BM' + struct.pack('<IHHI', 54 + len(pix), 0, 0, 54)
dib = struct.pack('<IiiHHIIiiII', 40, bw, bh, 1, 24, 0, len(pix), 2835, 2835, 0, 0)
open(w + '/rgb.bmp', 'wb').write(hdr + dib + pix)
PY

# image.dump with its placeholders filled: name sopinstance modality rows cols frames bits pixrep xs smallest largest intercept pixvr pixels
image() {
  sed -e "s|@NAME@|$1|" -e "s|@SOPINSTANCE@|$2|" -e "s|@MODALITY@|$3|" -e "s|@ROWS@|$4|" -e "s|@COLS@|$5|" \
      -e "s|@FRAMES@|$6|" -e "s|@BITS@|$7|" -e "s|@HIGHBIT@|$(($7 - 1))|" -e "s|@PIXREP@|$8|" -e "s|@XS@|$9|g" \
      -e "s|@SMALLEST@|${10}|" -e "s|@LARGEST@|${11}|" -e "s|@INTERCEPT@|${12}|" -e "s|@PIXVR@|${13}|" \
      -e "s|@PIXELS@|${14}|" -e "s|@PID@|PID-$2|" -e "s|@SOPCLASS@|${15}|" "$SRC/image.dump"
}

# Base files, explicit VR little endian.
dump2dcm $Q "$SRC/allvrs.dump" "$OUT/allvrs.dcm"
dump2dcm $Q "$SRC/nested.dump" "$OUT/nested.dcm"
dump2dcm $Q -e "$SRC/nested.dump" "$OUT/nested-undef.dcm"
dump2dcm $Q +g "$SRC/nested.dump" "$OUT/nested-grouplen.dcm"
dump2dcm $Q +ti -e "$SRC/nested.dump" "$OUT/nested-undef-implicit.dcm"
image "Test^CT" 2.25.100000000000000000000000000000031 CT 512 512 1 16 1 SS -1000 1200 -1024 OW "$W/ct.raw" 1.2.840.10008.5.1.4.1.1.2 > "$W/ct.dump"
dump2dcm $Q "$W/ct.dump" "$OUT/ct.dcm"
image "Test^MR" 2.25.100000000000000000000000000000041 MR 64 64 3 16 0 US 0 4095 0 OW "$W/mr.raw" 1.2.840.10008.5.1.4.1.1.4 > "$W/mr.dump"
dump2dcm $Q "$W/mr.dump" "$OUT/mr-mf.dcm"
dump2dcm $Q +p 256 0 "$W/mr.dump" "$OUT/mr-mf-padded.dcm"

# Character sets: raw bytes in the dumps (printf keeps this file ASCII).
charset() { # name terms pn-bytes
  { printf '(0008,0005) CS [%s]\n' "$2"
    printf '(0008,0016) UI [1.2.840.10008.5.1.4.1.1.7]\n(0008,0018) UI [2.25.1000000000000000000000000000000%s]\n' "$4"
    printf '(0010,0010) PN ['; printf "$3"; printf ']\n'
    printf '(0008,1030) LO ['; printf "$3"; printf ']\n'; } > "$W/cs-$1.dump"
  dump2dcm $Q "$W/cs-$1.dump" "$OUT/charset-$1.dcm"
}
charset latin1 'ISO_IR 100' 'Buc^J\351r\364me' 51
charset utf8 'ISO_IR 192' 'Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261=' 52
charset greek 'ISO_IR 126' '\304\351\357\355\365\363\351\357\362' 53
charset cyrillic 'ISO_IR 144' '\273\356\332\341\325\334\321\343\340\323' 54
charset japanese '\ISO 2022 IR 87' 'Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$?$m$&\033(B' 55
charset korean '\ISO 2022 IR 149' 'Hong^Gildong=\033$)C\373\363^\033$)C\321\316\324\327=\033$)C\310\253^\033$)C\261\346\265\277' 56

# Transfer syntaxes of the native files.
for f in allvrs nested ct mr-mf; do
  dcmconv $Q +ti "$OUT/$f.dcm" "$OUT/$f-implicit.dcm"
  dcmconv $Q +tb "$OUT/$f.dcm" "$OUT/$f-bigendian.dcm"
  dcmconv $Q +td "$OUT/$f.dcm" "$OUT/$f-deflated.dcm"
done
dcmconv $Q +ti "$OUT/charset-japanese.dcm" "$OUT/charset-japanese-implicit.dcm"

# Encapsulated: JPEG lossless (SV1 and any predictor), RLE, multi-frame,
# fragments of at most 2 KiB, an empty offset table.
dcmcjpeg $Q +e1 "$OUT/ct.dcm" "$OUT/ct-jpegll.dcm"
dcmcjpeg $Q +el "$OUT/mr-mf.dcm" "$OUT/mr-mf-jpegll14.dcm"
dcmcjpeg $Q +e1 +fs 2 "$OUT/mr-mf.dcm" "$OUT/mr-mf-jpegll-frag.dcm"
dcmcrle $Q "$OUT/ct.dcm" "$OUT/ct-rle.dcm"
dcmcrle $Q "$OUT/mr-mf.dcm" "$OUT/mr-mf-rle.dcm"
dcmcrle $Q -ot "$OUT/mr-mf.dcm" "$OUT/mr-mf-rle-nobot.dcm"

# 8-bit RGB: img2dcm from BMP, JPEG baseline of it, and img2dcm from that JPEG.
img2dcm $Q -i BMP "$W/rgb.bmp" "$OUT/sc-rgb.dcm" -k "SOPInstanceUID=2.25.100000000000000000000000000000061" \
  -k "StudyInstanceUID=2.25.100000000000000000000000000000062" -k "SeriesInstanceUID=2.25.100000000000000000000000000000063" \
  -k "PatientName=Test^RGB" -k "StudyDate=20240131"
dcmcjpeg $Q +eb "$OUT/sc-rgb.dcm" "$OUT/sc-rgb-jpegbaseline.dcm"
dcmcrle $Q "$OUT/sc-rgb.dcm" "$OUT/sc-rgb-rle.dcm"
dcmj2pnm $Q +oj "$OUT/sc-rgb.dcm" "$W/rgb.jpg"
img2dcm $Q -i JPEG "$W/rgb.jpg" "$OUT/sc-jpeg.dcm" -k "SOPInstanceUID=2.25.100000000000000000000000000000064" \
  -k "StudyInstanceUID=2.25.100000000000000000000000000000062" -k "SeriesInstanceUID=2.25.100000000000000000000000000000065" \
  -k "PatientName=Test^JPEG" -k "StudyDate=20240131"
