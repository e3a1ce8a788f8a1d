#!/usr/bin/env bash
# mkcorpus.sh DIR — build the conformance corpus into DIR with dcmtk.
#
# 12 studies, 210 instances, about 20 MiB, one patient per study:
#   A  CT  Explicit VR LE       2 series x 15, nested sequences, private tags
#   B  CT  Implicit VR LE       20
#   C  MR  Explicit VR LE       2 series x 12
#   D  MR  JPEG Lossless SV1    20 (dcmcjpeg +e1)
#   E  CT  RLE Lossless         20 (dcmcrle)
#   F  CR  JPEG Baseline 8 bit  16 (dcmcjpeg +eb, SOP Instance UIDs kept)
#   G  US  multi-frame RGB      5 Explicit VR LE + 5 RLE, 6 frames each
#   H  SC  multi-frame 16 bit   10 JPEG-LS Lossless (dcmcjpls), 4 frames each
#   I  CT  ISO_IR 192 Greek     15, nested and private sequences
#   J  MR  ISO_IR 192 Japanese  15 Deflated Explicit VR LE (dcmconv +td)
#   K  CR  Explicit VR LE       20
#   P  CT  PHI markers          5: every PHI attribute holds PHIMARK_<attr>
#                               (dates: 19070911, a date found nowhere else)
# Each study uses one compressed transfer syntax at most, so a retrieving
# SCU (getscu +xs/+xr/...) can offer it in one go.
#
# DIR/index.tsv lists every instance: path study series sop sopclass ts
# modality patient_id phi(0|1) frames. DIR/MANIFEST.sha256 hashes the files.
# The output is byte-identical on every run (UIDs are 2.25.<uuid5>, pixels
# from a seeded PRNG). A DIR built by the same script (same sha256) is kept
# as is: the script's hash is recorded in DIR/.mkcorpus.
# Needs dcmtk (dump2dcm dcmconv dcmcjpeg dcmcrle dcmcjpls) and python3
# (standard library only).
set -euo pipefail

DIR=${1:?usage: mkcorpus.sh DIR}
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
HASH=$(sha256sum "$SELF" | cut -d' ' -f1)
if [[ -f "$DIR/.mkcorpus" && "$(cat "$DIR/.mkcorpus")" == "$HASH" ]]; then
	exit 0
fi
for t in dump2dcm dcmconv dcmcjpeg dcmcrle dcmcjpls python3; do
	command -v "$t" >/dev/null || { echo "mkcorpus.sh: $t missing (apt-get install -y dcmtk)" >&2; exit 1; }
done
if [[ -e "$DIR" && -n "$(ls -A "$DIR" 2>/dev/null)" && ! -f "$DIR/.mkcorpus" ]]; then
	echo "mkcorpus.sh: $DIR is not empty and is not a corpus; refusing" >&2
	exit 1
fi
# Build beside DIR and swap in, so that a half-built corpus is never used.
TMP="$DIR.tmp.$$"
rm -rf "$TMP"
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT

python3 - "$TMP" <<'PY'
import hashlib, os, random, subprocess, sys, uuid

out = sys.argv[1]
NS = uuid.UUID("0c6f3f0e-5d2b-4a57-8f0a-6d4e3c2b1a09")
def uid(name):
    return "2.25.%d" % uuid.uuid5(NS, "medimint-conformance-v1/" + name).int

def run(*args):
    subprocess.run(args, check=True)

def mono16(rows, cols, frames, seed, signed):
    """A disc phantom with seeded noise in the low bits, little-endian."""
    rng = random.Random(seed)
    buf = bytearray()
    for f in range(frames):
        for y in range(rows):
            dy = (y - rows / 2) / (rows * 0.45)
            row = bytearray()
            for x in range(cols):
                dx = (x - cols / 2) / (cols * 0.4)
                inside = dx * dx + dy * dy <= 1
                v = (40 + 60 * f if inside else -1000) if signed else (800 + 40 * f if inside else 10)
                v += rng.getrandbits(4)
                row += (v & 0xFFFF).to_bytes(2, "little")
            buf += row
    return bytes(buf)

def mono8(rows, cols, seed):
    rng = random.Random(seed)
    return bytes(((x * 3 + y * 2) // 4 + rng.getrandbits(3)) & 0xFF for y in range(rows) for x in range(cols))

def rgb8(rows, cols, frames, seed):
    rng = random.Random(seed)
    b = bytearray()
    for f in range(frames):
        for y in range(rows):
            for x in range(cols):
                b += bytes(((x * 4 + f * 20) & 0xFF, (y * 4) & 0xFF, ((x + y) * 2 + rng.getrandbits(2)) & 0xFF))
    return bytes(b)

SOP = {
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "US": "1.2.840.10008.5.1.4.1.1.3.1",     # Ultrasound Multi-frame Image Storage
    "SC": "1.2.840.10008.5.1.4.1.1.7.3",     # Multi-frame Grayscale Word SC
}
TS = {
    "ele": "1.2.840.10008.1.2.1", "ile": "1.2.840.10008.1.2", "def": "1.2.840.10008.1.2.1.99",
    "jll": "1.2.840.10008.1.2.4.70", "jpb": "1.2.840.10008.1.2.4.50", "rle": "1.2.840.10008.1.2.5",
    "jls": "1.2.840.10008.1.2.4.80",
}

# (key, modality, charset, patient name, [(series number, count, encoding)], kind, options)
GREEK = "Γεωργίου^Νίκος"
JAPANESE = "Yamada^Tarou=山田^太郎=やまだ^たろう"
studies = [
    ("A", "CT", "ISO_IR 100", "Conformance^Alpha", [(1, 15, "ele"), (2, 15, "ele")], "ct", {"seq", "private"}),
    ("B", "CT", "ISO_IR 100", "Conformance^Bravo", [(1, 20, "ile")], "ct", {"private"}),
    ("C", "MR", "ISO_IR 100", "Conformance^Charlie", [(1, 12, "ele"), (2, 12, "ele")], "mr", set()),
    ("D", "MR", "ISO_IR 100", "Conformance^Delta", [(1, 20, "jll")], "mr", set()),
    ("E", "CT", "ISO_IR 100", "Conformance^Echo", [(1, 20, "rle")], "ct", {"seq"}),
    ("F", "CR", "ISO_IR 100", "Conformance^Foxtrot", [(1, 16, "jpb")], "cr", set()),
    ("G", "US", "ISO_IR 100", "Conformance^Golf", [(1, 5, "ele"), (2, 5, "rle")], "us", set()),
    ("H", "SC", "ISO_IR 100", "Conformance^Hotel", [(1, 10, "jls")], "sc", set()),
    ("I", "CT", "ISO_IR 192", GREEK, [(1, 15, "ele")], "ct", {"seq", "private"}),
    ("J", "MR", "ISO_IR 192", JAPANESE, [(1, 15, "def")], "mr", {"seq"}),
    ("K", "CR", "ISO_IR 100", "Conformance^Kilo", [(1, 20, "ele")], "cr", set()),
    ("P", "CT", "ISO_IR 100", None, [(1, 5, "ele")], "ct", {"seq"}),
]

PHI_DATE = "19070911"
# PHI attributes of the marker study (PS3.15 E.1-1 Basic Profile, those a
# string VR can carry): tag, VR, keyword, value. SH values fit 16 chars.
PHI = [
    ("0008,0050", "SH", "AccessionNumber", "PHIMARK_ACCN"),
    ("0008,0080", "LO", "InstitutionName", "PHIMARK_InstitutionName"),
    ("0008,0081", "ST", "InstitutionAddress", "PHIMARK_InstitutionAddress"),
    ("0008,0090", "PN", "ReferringPhysicianName", "PHIMARK_ReferringPhysicianName"),
    ("0008,1010", "SH", "StationName", "PHIMARK_STATION"),
    ("0008,1030", "LO", "StudyDescription", "PHIMARK_StudyDescription"),
    ("0008,103e", "LO", "SeriesDescription", "PHIMARK_SeriesDescription"),
    ("0008,1040", "LO", "InstitutionalDepartmentName", "PHIMARK_InstitutionalDepartmentName"),
    ("0008,1048", "PN", "PhysiciansOfRecord", "PHIMARK_PhysiciansOfRecord"),
    ("0008,1050", "PN", "PerformingPhysicianName", "PHIMARK_PerformingPhysicianName"),
    ("0008,1060", "PN", "NameOfPhysiciansReadingStudy", "PHIMARK_NameOfPhysiciansReadingStudy"),
    ("0008,1070", "PN", "OperatorsName", "PHIMARK_OperatorsName"),
    ("0010,0010", "PN", "PatientName", "PHIMARK_PatientName"),
    ("0010,0020", "LO", "PatientID", "PHIMARK_PatientID"),
    ("0010,0021", "LO", "IssuerOfPatientID", "PHIMARK_IssuerOfPatientID"),
    ("0010,0030", "DA", "PatientBirthDate", PHI_DATE),
    ("0010,1000", "LO", "OtherPatientIDs", "PHIMARK_OtherPatientIDs"),
    ("0010,1001", "PN", "OtherPatientNames", "PHIMARK_OtherPatientNames"),
    ("0010,1040", "LO", "PatientAddress", "PHIMARK_PatientAddress"),
    ("0010,1060", "PN", "PatientMotherBirthName", "PHIMARK_PatientMotherBirthName"),
    ("0010,2154", "SH", "PatientTelephoneNumbers", "PHIMARK_PHONE"),
    ("0010,2160", "SH", "EthnicGroup", "PHIMARK_ETHNIC"),
    ("0010,4000", "LT", "PatientComments", "PHIMARK_PatientComments"),
    ("0018,1000", "LO", "DeviceSerialNumber", "PHIMARK_DeviceSerialNumber"),
    ("0020,0010", "SH", "StudyID", "PHIMARK_STUDYID"),
    ("0032,1032", "PN", "RequestingPhysician", "PHIMARK_RequestingPhysician"),
]

SEQ = [
    "(0008,1032) SQ (Sequence with undefined length #=1)",
    "  (fffe,e000) na (Item with undefined length #=3)",
    "    (0008,0100) SH [CTCHEST]",
    "    (0008,0102) SH [99MEDIMINT]",
    "    (0008,0104) LO [CT chest]",
    "  (fffe,e00d) na (ItemDelimitationItem)",
    "(fffe,e0dd) na (SequenceDelimitationItem)",
    "(0040,0275) SQ (Sequence with undefined length #=2)",
    "  (fffe,e000) na (Item with undefined length #=2)",
    "    (0040,0009) SH [SPS1]",
    "    (0040,0008) SQ (Sequence with undefined length #=1)",
    "      (fffe,e000) na (Item with undefined length #=1)",
    "        (0008,0100) SH [P1]",
    "      (fffe,e00d) na (ItemDelimitationItem)",
    "    (fffe,e0dd) na (SequenceDelimitationItem)",
    "  (fffe,e00d) na (ItemDelimitationItem)",
    "  (fffe,e000) na (Item with undefined length #=0)",
    "  (fffe,e00d) na (ItemDelimitationItem)",
    "(fffe,e0dd) na (SequenceDelimitationItem)",
]
PRIVATE = [
    "(0009,0010) LO [MEDIMINT CONFORMANCE]",
    "(0009,1001) LO [private value]",
    "(0009,1002) SQ (Sequence with undefined length #=1)",
    "  (fffe,e000) na (Item with undefined length #=2)",
    "    (0009,0010) LO [MEDIMINT CONFORMANCE]",
    "    (0009,1003) UL 4207849484",
    "  (fffe,e00d) na (ItemDelimitationItem)",
    "(fffe,e0dd) na (SequenceDelimitationItem)",
]

index = []
tmp = os.path.join(out, ".work")
os.makedirs(tmp)
for si, (key, mod, charset, pname, series, kind, opts) in enumerate(studies):
    st_uid = uid("study/" + key)
    phi = pname is None
    pid = "PHIMARK_PatientID" if phi else "CONF-" + key
    sdate = "2023%02d%02d" % (si % 12 + 1, si + 1)
    for sn, count, enc in series:
        se_uid = uid("study/%s/series/%d" % (key, sn))
        sdir = os.path.join(out, key, "se%d" % sn)
        os.makedirs(sdir)
        for k in range(1, count + 1):
            name = "study/%s/series/%d/instance/%d" % (key, sn, k)
            sop = uid(name)
            seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
            raw = os.path.join(tmp, "pixels.raw")
            frames = 1
            if kind == "ct":
                rows = cols = 128
                px = mono16(rows, cols, 1, seed, True)
                img = ["(0028,0002) US 1", "(0028,0004) CS [MONOCHROME2]", "(0028,0100) US 16",
                       "(0028,0101) US 16", "(0028,0102) US 15", "(0028,0103) US 1",
                       "(0028,1050) DS [40]", "(0028,1051) DS [400]", "(0028,1052) DS [-1024]", "(0028,1053) DS [1]"]
                pvr = "OW"
            elif kind == "mr":
                rows = cols = 128
                px = mono16(rows, cols, 1, seed, False)
                img = ["(0028,0002) US 1", "(0028,0004) CS [MONOCHROME2]", "(0028,0100) US 16",
                       "(0028,0101) US 12", "(0028,0102) US 11", "(0028,0103) US 0",
                       "(0018,0020) CS [SE]", "(0018,0021) CS [NONE]", "(0018,0022) CS []", "(0018,0023) CS [2D]",
                       "(0018,0080) DS [500]", "(0018,0081) DS [15]", "(0018,0087) DS [1.5]", "(0018,0091) IS [1]"]
                pvr = "OW"
            elif kind == "cr":
                rows = cols = 256
                px = mono8(rows, cols, seed)
                img = ["(0028,0002) US 1", "(0028,0004) CS [MONOCHROME2]", "(0028,0100) US 8",
                       "(0028,0101) US 8", "(0028,0102) US 7", "(0028,0103) US 0", "(0018,0015) CS [CHEST]"]
                pvr = "OB"
            elif kind == "us":
                rows = cols = 64
                frames = 6
                px = rgb8(rows, cols, frames, seed)
                img = ["(0028,0002) US 3", "(0028,0004) CS [RGB]", "(0028,0006) US 0", "(0028,0008) IS [%d]" % frames,
                       "(0028,0009) AT (0018,1063)", "(0018,1063) DS [33.3]",
                       "(0028,0100) US 8", "(0028,0101) US 8", "(0028,0102) US 7", "(0028,0103) US 0"]
                pvr = "OB"
            else:  # sc: multi-frame grayscale word
                rows = cols = 96
                frames = 4
                px = mono16(rows, cols, frames, seed, False)
                img = ["(0028,0002) US 1", "(0028,0004) CS [MONOCHROME2]", "(0028,0008) IS [%d]" % frames,
                       "(0028,0009) AT (0018,2002)", "(0018,2002) SH [F]",
                       "(0028,0100) US 16", "(0028,0101) US 12", "(0028,0102) US 11", "(0028,0103) US 0",
                       "(0028,1052) DS [0]", "(0028,1053) DS [1]", "(0028,1054) LO [US]"]
                pvr = "OW"
            with open(raw, "wb") as f:
                f.write(px)
            L = [
                "(0008,0005) CS [%s]" % charset,
                "(0008,0008) CS [ORIGINAL\\PRIMARY]",
                "(0008,0016) UI [%s]" % SOP[mod],
                "(0008,0018) UI [%s]" % sop,
                "(0008,0020) DA [%s]" % sdate,
                "(0008,0030) TM [101500]",
                "(0008,0060) CS [%s]" % mod,
                "(0008,0064) CS [WSD]" if mod == "SC" else "",
                "(0008,0070) LO [Medimint Conformance]",
                "(0010,0040) CS [O]",
                "(0020,000d) UI [%s]" % st_uid,
                "(0020,000e) UI [%s]" % se_uid,
                "(0020,0011) IS [%d]" % sn,
                "(0020,0013) IS [%d]" % k,
                "(0028,0010) US %d" % rows,
                "(0028,0011) US %d" % cols,
            ]
            if phi:
                L += ["(%s) %s [%s]" % (t, vr, v) for t, vr, _, v in PHI]
            else:
                L += [
                    "(0008,0050) SH [ACC-%s]" % key,
                    "(0008,0090) PN []",
                    "(0008,1030) LO [Conformance study %s]" % key,
                    "(0008,103e) LO [Series %d]" % sn,
                    "(0010,0010) PN [%s]" % pname,
                    "(0010,0020) LO [%s]" % pid,
                    "(0010,0030) DA [19800101]",
                    "(0020,0010) SH [%s]" % key,
                ]
            if "seq" in opts:
                L += SEQ
            if "private" in opts:
                L += PRIVATE
            L += img
            L.append("(7fe0,0010) %s =%s" % (pvr, raw))
            dump = os.path.join(tmp, "dump.txt")
            with open(dump, "w", encoding="utf-8") as f:
                f.write("\n".join(l for l in L if l) + "\n")
            rel = os.path.join(key, "se%d" % sn, "%03d.dcm" % k)
            dst = os.path.join(out, rel)
            base = os.path.join(tmp, "base.dcm")
            # Study I writes its sequences with undefined lengths.
            run("dump2dcm", "-q", "+te", *(["-e"] if key == "I" else []), dump, base)
            if enc == "ele":
                os.replace(base, dst)
            elif enc == "ile":
                run("dcmconv", "-q", "+ti", base, dst)
            elif enc == "def":
                run("dcmconv", "-q", "+td", base, dst)
            elif enc == "jll":
                run("dcmcjpeg", "-q", "+e1", base, dst)
            elif enc == "jpb":
                run("dcmcjpeg", "-q", "+eb", "+un", base, dst)
            elif enc == "rle":
                run("dcmcrle", "-q", base, dst)
            elif enc == "jls":
                run("dcmcjpls", "-q", "+el", base, dst)
            index.append((rel, st_uid, se_uid, sop, SOP[mod], TS[enc], mod, pid, "1" if phi else "0", str(frames)))

for f in os.listdir(tmp):
    os.remove(os.path.join(tmp, f))
os.rmdir(tmp)
with open(os.path.join(out, "index.tsv"), "w") as f:
    f.write("#path\tstudy\tseries\tsop\tsopclass\tts\tmodality\tpatient_id\tphi\tframes\n")
    for r in index:
        f.write("\t".join(r) + "\n")
with open(os.path.join(out, "MANIFEST.sha256"), "w") as f:
    for r in index:
        h = hashlib.sha256(open(os.path.join(out, r[0]), "rb").read()).hexdigest()
        f.write("%s  %s\n" % (h, r[0]))
total = sum(os.path.getsize(os.path.join(out, r[0])) for r in index)
print("mkcorpus: %d instances, %d studies, %.1f MiB" % (len(index), len({r[1] for r in index}), total / 2**20), file=sys.stderr)
PY

echo "$HASH" >"$TMP/.mkcorpus"
rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$TMP" "$DIR"
trap - EXIT
