package envelope

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"testing/iotest"
)

func testKey(t testing.TB, seed byte) []byte {
	t.Helper()
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

// pseudo returns n deterministic pseudo-random bytes.
func pseudo(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	r.Read(b)
	return b
}

func encrypt(t testing.TB, dek, aad, plain []byte, chunk int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriterSize(&buf, dek, aad, chunk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(dek, aad, ct []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(ct), dek, aad)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func TestRoundTrip(t *testing.T) {
	dek := testKey(t, 1)
	aad := []byte("study 1.2.3/instance 1.2.3.4")
	const c = DefaultChunkSize
	sizes := []int{0, 1, c - 1, c, c + 1, 2 * c, 3*c + 7, 5<<20 + 3}
	for _, n := range sizes {
		plain := pseudo(n, uint64(n))
		var buf bytes.Buffer
		w, err := NewWriter(&buf, dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		// Odd-sized writes cross chunk boundaries at every phase.
		if _, err := io.CopyBuffer(w, iotest.HalfReader(bytes.NewReader(plain)), make([]byte, 12345)); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, want := int64(buf.Len()), CiphertextSize(int64(n)); got != want {
			t.Errorf("size %d: ciphertext is %d bytes, CiphertextSize says %d", n, got, want)
		}
		if p, ok := plaintextSize(int64(buf.Len()), c); !ok || p != int64(n) {
			t.Errorf("size %d: plaintextSize = %d, %v", n, p, ok)
		}
		r, err := NewReader(iotest.HalfReader(bytes.NewReader(buf.Bytes())), dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if !bytes.Equal(got, plain) {
			t.Fatalf("size %d: plaintext differs", n)
		}
		if k, err := r.Read(make([]byte, 1)); k != 0 || err != io.EOF {
			t.Fatalf("size %d: Read after the end = %d, %v", n, k, err)
		}
		// WriteTo, which io.Copy prefers, hands w the decrypted chunks.
		got, err = decryptWriteTo(dek, aad, buf.Bytes(), iotest.HalfReader)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("size %d: WriteTo: %v, plaintext equal %v", n, err, bytes.Equal(got, plain))
		}
	}
}

// decryptWriteTo decrypts ct through Reader.WriteTo, the source wrapped.
func decryptWriteTo(dek, aad, ct []byte, wrap func(io.Reader) io.Reader) ([]byte, error) {
	r, err := NewReader(wrap(bytes.NewReader(ct)), dek, aad)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = r.WriteTo(&out)
	return out.Bytes(), err
}

func TestRoundTripSmallChunks(t *testing.T) {
	dek := testKey(t, 2)
	for _, chunk := range []int{1, 2, 16, 64} {
		for n := 0; n <= 4*chunk+1; n++ {
			plain := pseudo(n, uint64(n))
			ct := encrypt(t, dek, nil, plain, chunk)
			if got, want := int64(len(ct)), ciphertextSize(int64(n), chunk); got != want {
				t.Fatalf("chunk %d size %d: got %d bytes, want %d", chunk, n, got, want)
			}
			r, err := NewReader(iotest.OneByteReader(bytes.NewReader(ct)), dek, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("chunk %d size %d: err %v, equal %v", chunk, n, err, bytes.Equal(got, plain))
			}
		}
	}
}

func TestNonceFresh(t *testing.T) {
	dek := testKey(t, 3)
	a := encrypt(t, dek, nil, []byte("same"), 64)
	b := encrypt(t, dek, nil, []byte("same"), 64)
	if bytes.Equal(a, b) {
		t.Fatal("two encryptions of the same plaintext are identical: nonce prefix not random")
	}
}

// tamperCase builds a ciphertext that must not decrypt.
type tamperCase struct {
	name string
	ct   []byte
	dek  []byte
	aad  []byte
}

func TestTamper(t *testing.T) {
	const chunk = 64
	dek := testKey(t, 4)
	aad := []byte("object A")
	plain := pseudo(5*chunk+10, 9)
	ct := encrypt(t, dek, aad, plain, chunk)
	full := chunk + Overhead
	chunkAt := func(i int) []byte { // ciphertext chunk i
		s := HeaderSize + i*full
		return ct[s:min(s+full, len(ct))]
	}
	nChunks := 6
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	hdr := ct[:HeaderSize]

	var cases []tamperCase
	for i := range len(ct) * 8 {
		c := bytes.Clone(ct)
		c[i/8] ^= 1 << (i % 8)
		cases = append(cases, tamperCase{name: "bitflip", ct: c})
	}
	for n := range len(ct) { // every truncation, chunk boundaries included
		cases = append(cases, tamperCase{name: "truncate", ct: ct[:n]})
	}
	for i := range nChunks - 1 {
		for j := i + 1; j < nChunks-1; j++ {
			parts := [][]byte{hdr}
			for k := range nChunks {
				switch k {
				case i:
					parts = append(parts, chunkAt(j))
				case j:
					parts = append(parts, chunkAt(i))
				default:
					parts = append(parts, chunkAt(k))
				}
			}
			cases = append(cases, tamperCase{name: "swap", ct: join(parts...)})
		}
	}
	for i := range nChunks - 1 {
		// duplicate chunk i in place (inserted after itself)
		parts := [][]byte{hdr}
		for k := range nChunks {
			parts = append(parts, chunkAt(k))
			if k == i {
				parts = append(parts, chunkAt(k))
			}
		}
		cases = append(cases, tamperCase{name: "duplicate", ct: join(parts...)})
		// drop chunk i
		parts = [][]byte{hdr}
		for k := range nChunks {
			if k != i {
				parts = append(parts, chunkAt(k))
			}
		}
		cases = append(cases, tamperCase{name: "drop", ct: join(parts...)})
	}
	cases = append(cases,
		tamperCase{name: "extend with copy of final chunk", ct: join(ct, chunkAt(nChunks-1))},
		tamperCase{name: "extend with byte", ct: join(ct, []byte{0})},
		tamperCase{name: "wrong aad", ct: ct, aad: []byte("object B")},
		tamperCase{name: "empty aad", ct: ct, aad: []byte{}},
		tamperCase{name: "wrong key", ct: ct, dek: testKey(t, 5)},
		tamperCase{name: "empty", ct: nil},
	)
	// Splice: header of another encryption (same key, same aad) with our chunks.
	other := encrypt(t, dek, aad, plain, chunk)
	cases = append(cases, tamperCase{name: "splice header", ct: join(other[:HeaderSize], ct[HeaderSize:])})
	// Chunks swapped in from another object at the same position.
	cases = append(cases, tamperCase{name: "splice chunk", ct: join(ct[:HeaderSize+full], other[HeaderSize+full:HeaderSize+2*full], ct[HeaderSize+2*full:])})

	for _, tc := range cases {
		k, a := dek, aad
		if tc.dek != nil {
			k = tc.dek
		}
		if tc.aad != nil {
			a = tc.aad
		}
		_, err := decrypt(k, a, tc.ct)
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
			t.Errorf("%s (len %d): err = %v, want ErrAuth or ErrFormat", tc.name, len(tc.ct), err)
		}
		_, err = decryptWriteTo(k, a, tc.ct, func(r io.Reader) io.Reader { return r })
		if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
			t.Errorf("WriteTo %s (len %d): err = %v, want ErrAuth or ErrFormat", tc.name, len(tc.ct), err)
		}
		if ra, err := NewReaderAt(bytes.NewReader(tc.ct), int64(len(tc.ct)), k, a); err == nil {
			_, err = io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
				t.Errorf("ReaderAt %s (len %d): err = %v, want ErrAuth or ErrFormat", tc.name, len(tc.ct), err)
			}
		} else if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
			t.Errorf("NewReaderAt %s: err = %v", tc.name, err)
		}
	}
}

func TestBadKey(t *testing.T) {
	if _, err := NewWriter(io.Discard, make([]byte, 16), nil); !errors.Is(err, ErrKeySize) {
		t.Errorf("NewWriter with 16-byte key: %v", err)
	}
	ct := encrypt(t, testKey(t, 1), nil, []byte("x"), 64)
	if _, err := NewReader(bytes.NewReader(ct), make([]byte, 31), nil); !errors.Is(err, ErrKeySize) {
		t.Errorf("NewReader with 31-byte key: %v", err)
	}
}

func TestReaderAt(t *testing.T) {
	dek := testKey(t, 6)
	aad := []byte("range")
	for _, tc := range []struct{ n, chunk int }{{0, 64}, {1, 64}, {64, 64}, {1000, 64}, {3<<20 + 5, DefaultChunkSize}} {
		plain := pseudo(tc.n, 77)
		ct := encrypt(t, dek, aad, plain, tc.chunk)
		ra, err := NewReaderAt(bytes.NewReader(ct), int64(len(ct)), dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		if ra.Size() != int64(tc.n) {
			t.Fatalf("Size = %d, want %d", ra.Size(), tc.n)
		}
		rng := mrand.New(mrand.NewPCG(1, uint64(tc.n)))
		for range 200 {
			off := rng.IntN(tc.n + 1)
			n := rng.IntN(tc.n - off + 1)
			got, err := io.ReadAll(io.NewSectionReader(ra, int64(off), int64(n)))
			if err != nil {
				t.Fatalf("n=%d range [%d,+%d): %v", tc.n, off, n, err)
			}
			if !bytes.Equal(got, plain[off:off+n]) {
				t.Fatalf("n=%d range [%d,+%d): wrong plaintext", tc.n, off, n)
			}
		}
		// Small sequential reads (served from the chunk cache) and
		// concurrent readers see the same plaintext.
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Go(func() {
				var got bytes.Buffer
				if _, err := io.CopyBuffer(&got, io.NewSectionReader(ra, 0, ra.Size()), make([]byte, 1000+g*7777)); err != nil {
					t.Error(err)
				}
				if !bytes.Equal(got.Bytes(), plain) {
					t.Errorf("n=%d: sequential read %d differs", tc.n, g)
				}
			})
		}
		wg.Wait()
		// Reading past the end reports io.EOF with the bytes that exist.
		p := make([]byte, 10)
		k, err := ra.ReadAt(p, max(0, int64(tc.n)-3))
		if err != io.EOF || k != min(3, tc.n) {
			t.Errorf("n=%d: ReadAt across end = %d, %v", tc.n, k, err)
		}
	}
}

var fuzzDEK = bytes.Repeat([]byte{0x42}, KeySize)

// FuzzReader feeds arbitrary ciphertext to the reader: it must never panic,
// and must never accept anything but ciphertexts produced with the key.
func FuzzReader(f *testing.F) {
	valid := map[string][]byte{}
	for _, tc := range []struct {
		plain string
		chunk int
	}{{"", 16}, {"a", 16}, {"exactly sixteen!", 16}, {"a little more than one chunk", 16}, {"hello world\n", 4}} {
		// A fixed nonce prefix: fuzz workers rebuild this map in their
		// own processes and must get the same ciphertexts.
		var ct bytes.Buffer
		w, err := newWriter(&ct, fuzzDEK, []byte("fuzz"), tc.chunk, [noncePrefixSize]byte{byte(len(valid))})
		if err != nil {
			f.Fatal(err)
		}
		w.Write([]byte(tc.plain))
		if err := w.Close(); err != nil {
			f.Fatal(err)
		}
		valid[ct.String()] = []byte(tc.plain)
		f.Add(ct.Bytes())
	}
	f.Add([]byte("MMEV\x01\x00\x00\x00\x10abcdefg"))
	f.Fuzz(func(t *testing.T, ct []byte) {
		got, err := decrypt(fuzzDEK, []byte("fuzz"), ct)
		if err != nil {
			if !errors.Is(err, ErrAuth) && !errors.Is(err, ErrFormat) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		want, ok := valid[string(ct)]
		if !ok {
			t.Fatalf("accepted a forged ciphertext (%d bytes)", len(ct))
		}
		if !bytes.Equal(got, want) {
			t.Fatal("wrong plaintext")
		}
	})
}

func benchData(b *testing.B) []byte {
	p := make([]byte, 64<<20)
	rand.Read(p)
	return p
}

func BenchmarkEncrypt(b *testing.B) {
	dek := testKey(b, 1)
	p := benchData(b)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		w, _ := NewWriter(io.Discard, dek, nil)
		w.Write(p)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	dek := testKey(b, 1)
	p := benchData(b)
	ct := encrypt(b, dek, nil, p, DefaultChunkSize)
	b.SetBytes(int64(len(p)))
	buf := make([]byte, 256<<10)
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(ct), dek, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}
